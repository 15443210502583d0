"""The database (Flask-SQLAlchemy), created once here and bound to the app in `create_app`; the
web layer's extensions are in `webapp.server.extensions`, the migrations' (Flask-Migrate) are
bound by the command line only (webapp.cli.server)."""

from typing import TYPE_CHECKING, ClassVar

from flask_sqlalchemy import SQLAlchemy
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
    Model = db.Model  # the base of every table in webapp.store.models
