"""Aliases (of models and of versions) and tag keys hold up to 128 characters, as every other name.

They were 100 wide while the validators (and README) allowed 128: on PostgreSQL a 101-character alias
failed inside the database. Downgrading is refused while a longer one is stored (it would not fit).

Revision ID: 0008
Revises: 0007
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from t2reg.errors import DatabaseError

revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_COLUMNS = (("model_aliases", "alias"), ("version_aliases", "alias"), ("version_tags", "key"))


def upgrade() -> None:
    for table, column in _COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=sa.String(length=100), type_=sa.String(length=128),
                                  existing_nullable=False)


def downgrade() -> None:
    bind = op.get_bind()
    for table, column in _COLUMNS:
        longest = bind.execute(sa.text(f"SELECT max(length({column})) FROM {table}")).scalar()
        if longest is not None and longest > 100:
            raise DatabaseError(f"{table}.{column} holds a value of {longest} characters; revision 0007 keeps 100 "
                                "at most: shorten it before downgrading")
    for table, column in _COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=sa.String(length=128), type_=sa.String(length=100),
                                  existing_nullable=False)
