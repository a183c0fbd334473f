"""stag_model: training and evaluation of STAG and the other seed methods from feature stores.

model.py             STAG, readable top to bottom (one abstract sentence per component)
baselines.py         STSTNet (Liong et al. 2019)
tsfmicro.py          TSFmicro: retention over the difference frame, a ViT over the onset frame, fusions
retention.py         multi-scale retention (RetNet), parallel and recurrent forms
meganet.py           MEGANet; gradient_attention.py its Gradient Attention block
image_models.py      the trainer's interface for the image models (inputs, substitutions)
registry.py          model name -> builder, the store arrays it reads, its config section
data.py              store -> batch (in memory or streamed), normalisation, flip augmentation
streaming.py         streamed reads of a store for the trainer
protocols.py         LOSO / GroupKFold / StratifiedKFold / leave-one-dataset-out; guarded labels
train.py             the fit loop, one model per fold
fold_processes.py    the folds of a protocol in worker processes (one per CPU core)
fold_parallel.py     the folds of a protocol as one vmapped computation (GPUs)
metrics.py           UF1 / UAR pooled over folds (MEGC 2019), per-class and per-fold figures
breakdown.py         the same figures per source dataset and per subject
report.py            the output folder of a run; run_figures.py its figures; training_log.py TensorBoard
checkpoints.py       per-fold checkpoints; released_weights.py STSTNet's released weights
evaluate.py          stag evaluate: checkpoints on the folds they were trained for
compare.py           per-sample comparison of two prediction files
augment.py           flips and shifts; allocator.py glibc keeping freed activations (speed)
"""
