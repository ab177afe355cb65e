"""Hyperparameter sweeps: K configurations trained as one ``vmap``-ed, jitted program.

A sweep member is described by a ``build(hparams)`` function that makes the
model and the optimizer from a dict of scalar hyperparameters (learning rate,
weight decay, dropout rate, initializer scale, ...): it returns a
:class:`Member` (model, optimizer, and optionally its own loss, evaluation and
averager) or just a ``(model, tx)`` pair. Inside :func:`train` those scalars
are traced values of a ``vmap`` over the members, so one compilation trains all
``K`` configurations at once, and changing the values (not their number) does
not compile again.

A sweep is the engine under ``vmap``: every member runs
:func:`jtricks.train.make_run` — the same step, epoch, validation and early
stopping as :func:`jtricks.train.fit` — so member ``k`` equals ``fit`` run
alone on ``hparams[k]`` with the same keys. Members share one key (common
random numbers: they differ only by their hyperparameters) unless ``key`` has
one per member, stop on their own through
:func:`jtricks.train.early_stopping` on the validation loss, and keep their
best parameters. The members run in rounds of epochs (see ``rounds``): a
member that stops is frozen for the rest of its round, and between rounds the
members still running are gathered into a smaller batch when they fit in half
of it, so members that stopped early stop costing compute.

Example:
  >>> def build(h):
  ...     model = jtricks.nn.mlp([16, 3], dropout=h["dropout"])
  ...     return model, jtricks.optim.adamw(h["learning_rate"], weight_decay=1e-4)
  >>> hparams = grid(learning_rate=[1e-3, 1e-2], dropout=[0.0, 0.3])
  >>> x = jax.random.normal(jax.random.key(0), (80, 4))
  >>> y = (x[:, 0] > 0).astype(jnp.int32)
  >>> result = train(build, hparams, (x[:60], y[:60]), (x[60:], y[60:]),
  ...                key=jax.random.key(1), epochs=5, batch_size=20, patience=2)
  >>> result.members.val_loss.shape
  (4, 5)
"""

from ._member import Member as Member
from ._member import MemberResult as MemberResult
from ._member import SweepResult as SweepResult
from ._member import fit_member as fit_member
from ._member import grid as grid
from ._member import member_of as member_of
from ._train import train as train

# The learning-rate range test is a sweep over rates (its own module, built on train above).
from jtricks._lr_range import (LRRangeResult, lr_range_test, plot_lr_range,  # noqa: E402
                               suggest_learning_rate)

__all__ = ["LRRangeResult", "Member", "MemberResult", "SweepResult", "fit_member", "grid",
           "lr_range_test", "member_of", "plot_lr_range", "suggest_learning_rate", "train"]


# Every NamedTuple here serializes with jax.export (jtricks/_export.py).
from jtricks._export import register_namedtuples as _register_namedtuples  # noqa: E402

_register_namedtuples(__name__)
