"""SVF training by policy gradient: ``spec`` defines a run, ``policy`` is the trainable expert,
``reinforce`` runs it (REINFORCE with a KL penalty) and publishes the result.

Nothing is imported here, so reading a spec (as the CLI does) does not load torch.
"""
