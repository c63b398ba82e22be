"""Transfer between model families by methods that learn the correspondence from unlabeled text.

``projection`` maps the expert's effect through what both models' matrices do on
shared text (closed form); ``distill`` trains the target's z to reproduce the
expert's effect on the answers (label-free). The math that needs no model lives
in :mod:`t2reg.transfer.projection`; canonical-order transfer in
:mod:`t2reg.transfer`. ``spec`` defines the transfer job (every method) and
``publishing`` runs it.

Nothing is imported here, so reading a spec (as the CLI does) does not load torch.
"""
