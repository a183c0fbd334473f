"""stag_model: training and evaluation of STAG (and the STSTNet baseline) from feature stores.

model.py      STAG, readable top to bottom (one abstract sentence per component)
baselines.py  STSTNet (Liong et al. 2019)
data.py       store -> StagBatch (in memory or streamed), normalisation, flip augmentation
protocols.py  LOSO / GroupKFold / StratifiedKFold / leave-one-dataset-out; guarded labels
train.py      the fit loop, one model per fold
metrics.py    UF1 / UAR pooled over folds (MEGC 2019), per-class and per-fold figures
report.py     the output folder of a run
cli.py        stag-fit
"""
