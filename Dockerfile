# volumetry in a container. Build and run the sample trial, results on the host in ./out:
#   docker build -t volumetry .
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/out:/data/out" volumetry run --out /data/out
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 MPLCONFIGDIR=/tmp/matplotlib NUMBA_CACHE_DIR=/opt/numba-cache
WORKDIR /opt/volumetry-src
COPY pyproject.toml README.md ./
COPY volumetry ./volumetry
# the compiled kernels are built once here, into a cache every user of the image can read and add to
RUN pip install . && rm -rf /opt/volumetry-src \
    && mkdir -p /opt/numba-cache && cd / && python -c "from volumetry.pipeline.tasks import warm_up; warm_up()" \
    && chmod -R a+rwX /opt/numba-cache
# the working folder holds the sample trial and the pipeline files, so that `volumetry run`
# with no arguments runs the sample trial as in the README
WORKDIR /data
COPY pipelines ./pipelines
COPY sample_data ./sample_data
RUN chmod -R a+rX /data && mkdir -p /data/out && chmod 1777 /data/out
ENTRYPOINT ["volumetry"]
CMD ["--help"]
