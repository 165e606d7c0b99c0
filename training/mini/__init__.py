"""How cosmos-mini is made: its procedural-world data, VAE and transformer training, assembly.

``cosmos-ros make-mini-model`` runs the stages in order (see build.py); each stage keeps its
results and checkpoints in one work folder, so an interrupted build continues where it stopped
and the GPU-heavy stages can run on another machine.
"""

#: The build's stages, in order (here, so the CLI's --help needs no torch import).
STAGES = ("prompts", "vae", "transformer", "assemble")
