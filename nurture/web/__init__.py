"""The web app: staff pages, the JSON API and the public unsubscribe page."""
