"""The environment the Makefile builds: one OpenCV wheel with TV-L1."""
from stag_features import install_check


def test_exactly_one_opencv_wheel_with_optflow():
    assert install_check.installed_opencv_distributions() == [install_check.EXPECTED_OPENCV]
    assert install_check.problems() == []


def test_pipeline_config_hash_is_stable_and_sensitive():
    from schemas.pipeline_config import PipelineConfig

    base = PipelineConfig()
    assert base.config_hash() == PipelineConfig().config_hash()
    changed = base.with_overrides(align={"crop_size": 128})
    assert changed.config_hash() != base.config_hash()
    assert PipelineConfig.model_validate_json(changed.model_dump_json(by_alias=True)).config_hash() == changed.config_hash()
