"""PASCAL VOC detection read from VOC's own layout (JPEGImages, Annotations XML, ImageSets/Main), written here
as VOC writes it."""
import numpy as np
import pytest
import torch
from PIL import Image

from mtlbench.cli import main
from mtlbench.data import DATASETS, DatasetError

SIZES = {"2008_000001": (40, 30), "2008_000002": (50, 20), "2008_000003": (30, 30), "2007_000010": (40, 40)}
OBJECTS = {  # image id -> (name, difficult, xmin, ymin, xmax, ymax), 1-based inclusive pixels as VOC writes them
    "2008_000001": [("dog", 0, 1, 1, 40, 30), ("person", 1, 5, 5, 10, 20)],
    "2008_000002": [("car", 0, 11, 3, 30, 12), ("car", 0, 31, 3, 50, 20), ("tvmonitor", 0, 2, 2, 8, 9)],
    "2008_000003": [],
    "2007_000010": [("bird", 0, 3, 4, 20, 40)],
}


def annotation(image_id: str, objects) -> str:
    width, height = SIZES[image_id]
    body = "".join(f"<object><name>{name}</name><pose>Left</pose><truncated>0</truncated><difficult>{hard}"
                   f"</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax>"
                   f"</bndbox></object>" for name, hard, x1, y1, x2, y2 in objects)
    return (f"<annotation><folder>VOC2012</folder><filename>{image_id}.jpg</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size><segmented>0</segmented>{body}</annotation>")


def write_voc(root):
    rng = np.random.default_rng(0)
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    for image_id, (width, height) in SIZES.items():
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
            root / "JPEGImages" / f"{image_id}.jpg")
        (root / "Annotations" / f"{image_id}.xml").write_text(annotation(image_id, OBJECTS[image_id]))
    (root / "ImageSets/Main/train.txt").write_text("2008_000001\n2008_000002\n2008_000003\n")
    (root / "ImageSets/Main/val.txt").write_text("2007_000010\n")


def test_boxes_are_pixel_edges_scaled_with_the_image_and_difficult_objects_are_left_out(tmp_path):
    write_voc(tmp_path)
    dataset = DATASETS.get("pascal_voc_detection")(root=str(tmp_path), height=20, width=20, max_objects=4)
    train = dataset.load("train")
    assert train.images.shape == (3, 3, 20, 20) and train.targets["detection"].shape == (3, 4, 5)
    boxes = train.targets["detection"]
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0.0, 0.0, 20.0, 20.0, 11.0]))  # the whole image: a dog
    assert (boxes[0, 1:, 4] == -1).all()  # the difficult person is left out, the rest is padding
    sx, sy = 20 / 50, 20 / 20
    torch.testing.assert_close(boxes[1, :3], torch.tensor([[10 * sx, 2 * sy, 30 * sx, 12 * sy, 6.0],
                                                           [30 * sx, 2 * sy, 50 * sx, 20 * sy, 6.0],
                                                           [1 * sx, 1 * sy, 8 * sx, 9 * sy, 19.0]]))
    assert (boxes[2, :, 4] == -1).all()  # an image without objects is valid
    kept = DATASETS.get("pascal_voc_detection")(root=str(tmp_path), height=20, width=20, max_objects=4, difficult=True)
    assert kept.load("train").targets["detection"][0, 1, 4] == 14  # person
    assert len(dataset.load("test")) == 1 and dataset.tasks()["detection"].image_size == (20, 20)


@pytest.mark.parametrize("objects, message", [
    ([("dog", 0, 0, 1, 10, 10)], r"object 0 \(dog\): box \(0, 1, 10, 10\) lies outside the 40x30 image"),
    ([("dog", 0, 1, 1, 41, 10)], r"object 0 \(dog\): box \(1, 1, 41, 10\) lies outside the 40x30 image"),
    ([("cat", 0, 1, 1, 5, 5), ("dog", 0, 10, 10, 5, 12)], r"object 1 \(dog\): box \(10, 10, 5, 12\) has a negative size"),
    ([("unicorn", 0, 1, 1, 5, 5)], r"object 0 \(unicorn\): unknown class 'unicorn'"),
    ([("dog", 0, "a", 1, 5, 5)], r"object 0 \(dog\): <bndbox> lacks a number"),
])
def test_a_malformed_object_is_refused_naming_the_file_and_the_object(tmp_path, objects, message, capsys):
    write_voc(tmp_path)
    path = tmp_path / "Annotations" / "2008_000001.xml"
    path.write_text(annotation("2008_000001", objects))
    with pytest.raises(DatasetError, match=r"2008_000001\.xml: " + message):
        DATASETS.get("pascal_voc_detection")(root=str(tmp_path), height=20, width=20).load("train")
    assert main(["data", "check", "pascal_voc_detection", str(tmp_path)]) == 1
    assert "2008_000001.xml: object" in capsys.readouterr().out


def test_broken_xml_a_missing_size_too_many_objects_and_a_mismatched_image_are_named(tmp_path, capsys):
    write_voc(tmp_path)
    (tmp_path / "Annotations" / "2008_000001.xml").write_text("<annotation><size>")
    (tmp_path / "Annotations" / "2008_000003.xml").write_text("<annotation><object/></annotation>")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "JPEGImages" / "2007_000010.jpg")
    assert main(["data", "check", "pascal_voc_detection", str(tmp_path), "--set", "max_objects=2"]) == 1
    out = capsys.readouterr().out
    assert "2008_000001.xml: not valid XML" in out
    assert "2008_000003.xml: <size> lacks a whole <width> and <height>" in out
    assert "2008_000002.xml: 3 objects, more than max_objects = 2 (raise it)" in out
    assert "2007_000010.jpg: size 10x10, its RGB image is 40x40" in out


def test_a_test_list_that_overlaps_the_training_one_and_a_missing_folder_are_refused(tmp_path):
    write_voc(tmp_path)
    (tmp_path / "ImageSets/Main/val.txt").write_text("2008_000002\n")
    with pytest.raises(DatasetError, match="1 images of val.txt are also in train.txt"):
        DATASETS.get("pascal_voc_detection")(root=str(tmp_path)).require()
    with pytest.raises(DatasetError, match="nowhere not found. Expected .*Annotations/<id>.xml"):
        DATASETS.get("pascal_voc_detection")(root=str(tmp_path / "nowhere")).require()
    import shutil

    shutil.rmtree(tmp_path / "Annotations")
    with pytest.raises(DatasetError, match="folder .*Annotations not found"):
        DATASETS.get("pascal_voc_detection")(root=str(tmp_path)).require()


def test_a_detection_job_trains_on_voc(tmp_path):
    """The suite path: SegNet with EfficientDet's head on the VOC fixture, one epoch, scored by COCO mAP."""
    from conftest import TINY_JOB
    from mtlbench.train import run_job
    import copy

    write_voc(tmp_path / "voc")
    job = copy.deepcopy(TINY_JOB)
    job.update(dataset={"name": "pascal_voc_detection", "root": str(tmp_path / "voc"), "height": 32, "width": 32,
                        "train": "train", "test": "val", "val": 1, "difficult": False, "max_objects": 8},
               tasks=["detection"])
    job["train"]["epochs"] = 1
    (tmp_path / "job").mkdir()
    result = run_job(job, tmp_path / "job")
    scores = result["test"]["detection"]
    assert set(scores) == {"map", "map_50", "map_75", "loss"}
    assert all(0 <= scores[k] <= 1 for k in ("map", "map_50", "map_75")) and scores["loss"] > 0


def write_label_map(path, image_id, fill):
    width, height = SIZES[image_id]
    labels = np.full((height, width), fill, np.uint8)
    labels[:2, :] = 255  # a boundary
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels, mode="L").save(path)


def test_segmentation_is_read_where_a_label_map_exists_and_the_rest_is_unlabelled(tmp_path, capsys):
    """Yun and Cho 2023's VOC source: detection on every image, segmentation where VOC or SBD has a map
    (SegmentationClassAug for training images, SegmentationClass for test images)."""
    write_voc(tmp_path)
    write_label_map(tmp_path / "SegmentationClassAug" / "2008_000002.png", "2008_000002", 7)
    write_label_map(tmp_path / "SegmentationClass" / "2007_000010.png", "2007_000010", 3)
    write_label_map(tmp_path / "SegmentationClass" / "2008_000001.png", "2008_000001", 5)  # a test-time map only
    dataset = DATASETS.get("pascal_voc_detection")(root=str(tmp_path), height=10, width=10, max_objects=4,
                                                   segmentation=True)
    assert set(dataset.tasks()) == {"detection", "seg"} and dataset.tasks()["seg"].channels == 21
    train, test = dataset.load("train"), dataset.load("test")
    assert train.labelled["seg"].tolist() == [False, True, False]
    assert (train.targets["seg"][1, 0] == -1).all() and (train.targets["seg"][1, -1] == 7).all()
    assert set(train.targets["seg"][1].unique().tolist()) == {-1, 7}
    assert (train.targets["seg"][[0, 2]] == -1).all()
    assert test.labelled["seg"].tolist() == [True] and (test.targets["seg"][0, -1] == 3).all()
    assert "seg" not in DATASETS.get("pascal_voc_detection")(root=str(tmp_path)).tasks()

    write_label_map(tmp_path / "SegmentationClassAug" / "2008_000003.png", "2008_000003", 40)
    assert main(["data", "check", "pascal_voc_detection", str(tmp_path), "--set", "segmentation=true"]) == 1
    assert "SegmentationClassAug/2008_000003.png: labels [40] outside 0..20" in capsys.readouterr().out


def test_a_union_part_with_partial_labels_keeps_them(tmp_path):
    write_voc(tmp_path / "voc")
    write_label_map(tmp_path / "voc" / "SegmentationClassAug" / "2008_000001.png", "2008_000001", 1)
    union = DATASETS.get("union")(height=16, width=16, parts=[
        {"name": "pascal_voc_detection", "root": str(tmp_path / "voc"), "max_objects": 4, "segmentation": True,
         "tasks": ["detection", "seg"]},
        {"name": "synthrooms", "train": 2, "val": 1, "test": 1, "tasks": ["depth"]}])
    train = union.load("train")
    assert train.labelled["seg"].tolist() == [True, False, False, False, False]
    assert train.labelled["detection"].tolist() == [True, True, True, False, False]
    assert train.labelled["depth"].tolist() == [False, False, False, True, True]


def test_a_union_names_the_part_whose_files_are_missing_and_a_list_of_ones_own_says_so(tmp_path):
    write_voc(tmp_path / "voc")
    union = DATASETS.get("union")(height=16, width=16, parts=[
        {"name": "synthrooms", "train": 2, "val": 1, "test": 1, "tasks": ["depth"]},
        {"name": "pascal_voc_detection", "root": str(tmp_path / "voc"), "train": "trainvalsegdet",
         "tasks": ["detection"]}])
    with pytest.raises(DatasetError, match=r"union: parts\[1\] \(pascal_voc_detection; .*dataset.parts\[1\]\): .*"
                                           r"trainvalsegdet.txt not found. trainvalsegdet.txt is not one of VOC's"):
        union.require()
