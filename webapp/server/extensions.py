"""The web layer's Flask extensions, created once here and bound to the app in `create_app`."""

from flask_compress import Compress
from flask_htmx import HTMX
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
htmx = HTMX()
compress = Compress()  # gzip (or br/zstd when asked) for pages, regions and JSON
talisman = Talisman()
# Only the routes that ask for a limit get one (the operator login).
limiter = Limiter(key_func=get_remote_address, default_limits=[])
