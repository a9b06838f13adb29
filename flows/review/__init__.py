"""The review web app: pages, JSON API and security around tasks.review."""
