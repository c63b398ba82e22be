"""What people look at: ``plots`` of jobs and transfers, and ``demo``, the main job end to end."""
