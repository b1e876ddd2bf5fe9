from deeptrade.cli import expand_sweep, tag_points


def test_expand_sweep_is_hydras_cartesian_product() -> None:
    points = expand_sweep(["experiment=smoke", "symbol=A,B", "run.seed=range(0,3)"])
    assert len(points) == 6
    assert points[0] == ["experiment=smoke", "symbol=A", "run.seed=0"]


def test_train_sweep_points_get_distinct_tags_from_varying_keys() -> None:
    points = tag_points(expand_sweep(["symbol=A,B", "model.xgboost.max_depth=1,2", "run.seed=0"]))
    tags = [p[-1] for p in points]
    assert tags == ["train.tag=max_depth1", "train.tag=max_depth2"] * 2
    explicit = [["symbol=A", "train.tag=x"], ["symbol=A", "train.tag=y"]]
    assert tag_points(explicit) == explicit
