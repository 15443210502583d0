"""Flask extensions, created once here and bound to the app in `create_app`."""

from typing import TYPE_CHECKING, ClassVar

from flask_compress import Compress
from flask_htmx import HTMX
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import Table
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
if TYPE_CHECKING:
    # mypy cannot take an attribute such as `db.Model` as a base class (python/mypy#8603).
    # db.Model is built from Base's body, so to the checker the models derive from Base,
    # each mapping one Table (its __tablename__), where DeclarativeBase says any FromClause.
    class Model(Base):
        __abstract__ = True
        __table__: ClassVar[Table]
else:
    Model = db.Model  # the base of every table in webapp.models
migrate = Migrate()
csrf = CSRFProtect()
htmx = HTMX()
compress = Compress()  # gzip (or br/zstd when asked) for pages, regions and JSON
talisman = Talisman()
# Only the routes that ask for a limit get one (the operator login).
limiter = Limiter(key_func=get_remote_address, default_limits=[])
