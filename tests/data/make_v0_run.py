"""Write a small run folder with the code of commit b2e9190 (before the layer-constraint interface), and the
model after resuming it to step 16 with that code. Run from the repository root; kept for the record."""
import biocircuits.config.experiment as ex
from biocircuits.train.trainer import run_experiment

exp = ex.Experiment.from_dict({
    "name": "v0_run",
    "constraints": {"feedback": {"rule": "sign_symmetry", "options": {"magnitude": "random_batch"},
                                 "overrides": {"3": "fa"}},
                    "dale": {"excitatory_fraction": 0.75, "enforce": "project"},
                    "phases": {"error_noise": 0.1, "error_quantization": 8, "error_delay": 2,
                               "seed": 3},
                    "plasticity": {"rules": [{"match": {"layers": "3", "population": "I"}, "lr_scale": 0.5}]}},
    "data": {"name": "digits"}, "model": {"name": "mlp", "kwargs": {"hidden": [16]}},
    "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "train": {"steps": 8, "batch_size": 32, "seed": 0, "deterministic": True, "log_every": 4, "eval_every": 4,
              "probe_every": 4, "plots": False},
})
print(run_experiment(exp, "tests/data/v0_run"))

# the same run resumed to step 16 by the same code: the reference a later version must reproduce
import shutil  # noqa: E402

import torch  # noqa: E402

from biocircuits.train.checkpoint import load_checkpoint  # noqa: E402

shutil.copytree("tests/data/v0_run", "/tmp/v0_continued", dirs_exist_ok=True)
longer = exp.model_copy(update={"train": exp.train.model_copy(update={"steps": 16})})
run_experiment(longer, "/tmp/v0_continued", resume=True)
torch.save(load_checkpoint("/tmp/v0_continued/checkpoint.pt")["model"], "tests/data/v0_run_step16_model.pt")
