"""Build-time code for the fw46 rig (run by ``rigs/build_rig.py``; never needed at run time)."""
