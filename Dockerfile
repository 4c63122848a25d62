# The Task API image: the `taskapi` command for the gateway and reconciler jobs (jobspecs/).
#   docker build -t <registry>/taskapi:<version> . && docker push <registry>/taskapi:<version>
#   taskapi cluster up --gateway-image <registry>/taskapi:<version> ...
FROM python:3.11-slim

RUN useradd --create-home --uid 10001 taskapi
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY gateway ./gateway
# gateway/pools.json is a link into terraform/: the package needs the file it points to.
COPY terraform/pools.json ./terraform/pools.json
RUN pip install --no-cache-dir . && rm -rf /src

USER taskapi
WORKDIR /home/taskapi
EXPOSE 8080
# No ENTRYPOINT: the jobspecs set `command = "taskapi"` and their own arguments.
CMD ["taskapi", "serve", "--backend", "nomad", "--host", "0.0.0.0"]
