# volumetry in a container: `docker build -t volumetry . && docker run --rm -v $PWD/out:/work/out volumetry run --out /work/out`
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1
WORKDIR /opt/volumetry
COPY pyproject.toml README.md ./
COPY volumetry ./volumetry
COPY pipelines ./pipelines
COPY sample_data ./sample_data
RUN pip install . && useradd --create-home volumetry
USER volumetry
WORKDIR /opt/volumetry
ENTRYPOINT ["volumetry"]
CMD ["--help"]
