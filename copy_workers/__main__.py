"""``python -m copy_workers``: start a copy worker (what ``s3fanout worker`` runs)."""

from copy_workers.worker_main import main

if __name__ == "__main__":
    main()
