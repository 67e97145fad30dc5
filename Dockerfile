# `blip2 serve` in a container. UNTESTED: the machine this project is developed on has no Docker engine; the
# steps are the ones scripts/setup.sh runs on Debian 12, which are tested. See docs/deploy.md.
#
#   docker build -t blip2-webgpu .
#   docker run --rm -p 8000:8000 -v /srv/models:/models blip2-webgpu \
#     serve --host 0.0.0.0 --model /models/blip2-opt-2.7b --api-key "$KEY"
#
# The image runs on the CPU through lavapipe (Mesa's Vulkan driver) anywhere; with an NVIDIA GPU, run it with
# the NVIDIA Container Toolkit (`--gpus all`, NVIDIA_DRIVER_CAPABILITIES=all), which mounts the driver's Vulkan
# ICD: Dawn then picks the GPU.
FROM node:20-bookworm-slim

RUN printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      > /etc/apt/sources.list.d/backports.sources \
 && apt-get update \
 && apt-get install -y --no-install-recommends -t bookworm-backports mesa-vulkan-drivers libvulkan1 \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY package.json package-lock.json ./
# Scripts wait for the sources (`prepare` builds them); sharp and webgpu ship prebuilt binaries.
RUN npm ci --ignore-scripts
COPY . .
RUN npm run build && npm prune --omit=dev

ENV HF_HOME=/models/hf NODE_ENV=production
EXPOSE 8000
# /health answers 503 once the GPU device is lost; blip2 serve then exits with status 75 and the container's
# restart policy (docker run --restart on-failure, Kubernetes) starts a fresh process.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s CMD curl -fsS http://127.0.0.1:8000/health >/dev/null || exit 1
ENTRYPOINT ["node", "bin/blip2.js"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--model", "/models/blip2-opt-2.7b"]
