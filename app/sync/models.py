"""The server's change counter: one row whose value orders every change for pull cursors."""

from sqlmodel import Field, SQLModel


class ChangeCounter(SQLModel, table=True):
    """A single row (id 1). Writers bump it inside their transaction, so commits happen in
    counter order and a reader's committed value is a cursor nothing can slip in under."""

    __tablename__ = "change_counter"

    id: int = Field(default=1, primary_key=True)
    value: int = 0
