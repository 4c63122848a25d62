"""``taskapi cluster``: provision the AWS cluster with Terraform and put the platform's jobs on it."""
