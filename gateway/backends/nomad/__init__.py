"""The Nomad backend: Task APIs as parameterized batch jobs."""
