"""Online serving: the champion (and later its challenger) loaded by registry alias, features
from the Feast online store, an HTTP API on FastAPI. Never imports training code (an
import-linter contract); stays off pandas on the request path."""
