"""Offline checks of the deploy artefacts: Dockerfiles, docker-compose.yml, deploy/k8s."""
