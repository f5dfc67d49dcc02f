"""gui.samples: unique sample IDs, opening folders as samples, and the thumbnail model's counts
of pending, ready and unreadable images (a fake worker pool runs tasks when the test says)."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from gui.samples import SamplesPanel
from gui.thumbnails import ThumbnailModel
from gui.workbench import PENDING, READY, UNREADABLE, Sample, SampleImage
from gui.workers import TaskError
from tests.gui.conftest import make_sample_folder


class FakePool:
    """Records submitted tasks; :meth:`run_all` runs them in this thread, delivering as the real
    pool does (``on_result`` or ``on_error``)."""

    def __init__(self):
        self.tasks: list[tuple] = []

    def submit(self, fn, *args, on_result=None, on_error=None, priority=0, name="", **kwargs):
        task = (name, fn, args, kwargs, on_result, on_error)
        self.tasks.append(task)
        return task


    def names(self) -> list[str]:
        return [t[0] for t in self.tasks]

    def run_all(self) -> None:
        while self.tasks:
            _name, fn, args, kwargs, on_result, on_error = self.tasks.pop(0)
            try:
                value = fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - handed on like the real pool does
                on_error(TaskError(exc, "".join(traceback.format_exception(exc))))
            else:
                on_result(value)


@pytest.fixture
def pool():
    return FakePool()


@pytest.fixture
def panel(qtbot, pool):
    p = SamplesPanel(pool, default_operator="T. Tester")
    qtbot.addWidget(p)
    return p


def sample(name: str, n: int = 2, folder: Path | None = None) -> Sample:
    return Sample(name, folder, [SampleImage(Path(f"/data/{name}/{i}.png")) for i in range(n)])


def tiny_qimage() -> QImage:
    image = QImage(4, 3, QImage.Format.Format_RGB888)
    image.fill(0)
    return image


def test_unique_sample_id_numbers_names_that_are_taken(panel):
    assert panel.unique_sample_id("S") == "S"
    first = panel.add_sample(sample("S"))
    panel.add_sample(sample(panel.unique_sample_id("S")))
    assert [s.sample_id for s in panel.samples] == ["S (2)", "S"]  # newest first
    assert panel.unique_sample_id("S") == "S (3)"
    assert panel.unique_sample_id("S", exclude=first) == "S"
    assert panel.unique_sample_id("T") == "T"


def test_adding_a_sample_selects_it_and_asks_for_one_thumbnail_per_image(panel, pool):
    added, current = [], []
    panel.sample_added.connect(added.append)
    panel.current_sample_changed.connect(current.append)
    s = panel.add_sample(sample("S", 3))
    assert added == [s] and current == [s] and panel.current_sample() is s
    # Fed a few at a time (gui.sample_list.OFFSCREEN_IN_FLIGHT), plus the row the view's layout
    # asks about (the last one): all three here, each once.
    assert pool.names() == ["thumbnail"] * 3
    assert sorted(args[0].name for _n, _f, args, *_ in pool.tasks) == ["0.png", "1.png", "2.png"]
    assert panel.sample_id_edit.text() == "S" and panel.current_row() == 0
    assert panel.images_label.text() == "3 image(s) · 3 loading"
    panel.select_sample(s)
    assert len(pool.tasks) == 3  # thumbnails are asked for once per sample
    pool.run_all()
    assert [im.state != PENDING for im in s.images] == [True] * 3


def test_opening_a_folder_scans_it_into_a_sample_named_after_the_folder(panel, pool, tmp_path):
    folder = make_sample_folder(tmp_path, "S-1", count=3, size=40)
    (folder / "notes.txt").write_text("not an image")
    panel.open_paths([folder])
    assert pool.names() == ["scan"] and panel.samples == []  # appears once scanned
    pool.run_all()
    s = panel.current_sample()
    assert s is not None and (s.sample_id, s.folder, s.operator) == ("S-1", folder, "T. Tester")
    assert [im.name for im in s.images] == ["cell_01.png", "cell_02.png", "cell_03.png"]
    assert len(s.skipped) == 1
    assert all(im.state == READY for im in s.images) and s.images[0].size == (40, 40)
    assert panel.images_label.text() == "3 image(s) · 1 other file(s) skipped"


def test_opening_an_open_folder_again_selects_its_sample_and_a_same_named_one_gets_a_number(panel, pool, tmp_path):
    messages = []
    panel.status_message.connect(messages.append)
    first = make_sample_folder(tmp_path / "a", "S", count=1, size=40)
    panel.open_paths([first])
    pool.run_all()
    panel.open_paths([first])
    assert pool.tasks == [] and len(panel.samples) == 1
    assert messages[-1] == f"{first} is already open as sample S."
    panel.open_paths([make_sample_folder(tmp_path / "b", "S", count=1, size=40)])
    pool.run_all()
    assert [s.sample_id for s in panel.samples] == ["S (2)", "S"]


def test_loose_files_become_one_sample_and_an_empty_folder_none(panel, pool, tmp_path):
    folder = make_sample_folder(tmp_path, "loose", count=3, size=40)
    messages = []
    panel.status_message.connect(messages.append)
    panel.open_paths([folder / "cell_01.png", folder / "cell_03.png"])
    pool.run_all()
    assert [(s.sample_id, len(s.images)) for s in panel.samples] == [("loose", 2)]
    (tmp_path / "empty").mkdir()
    panel.open_paths([tmp_path / "empty"])
    pool.run_all()
    assert len(panel.samples) == 1 and messages[-1] == f"No images found in {tmp_path / 'empty'}."


def test_thumbnail_model_counts_follow_each_images_state():
    s = sample("S", 3)
    s.images[2].state = READY
    model = ThumbnailModel(s)
    assert [model.count(k) for k in (PENDING, READY, UNREADABLE)] == [2, 1, 0]
    model.set_unreadable(0, "not an image")
    assert [model.count(k) for k in (PENDING, READY, UNREADABLE)] == [1, 1, 1]
    index = model.index(0)
    assert model.data(index, ThumbnailModel.StateRole) == UNREADABLE
    assert model.data(index, ThumbnailModel.ErrorRole) == "not an image"
    assert model.data(index, 3).endswith("unreadable: not an image")  # ToolTipRole
    model.set_thumbnail(0, tiny_qimage(), (400, 300))  # readable after all (e.g. a retry)
    assert [model.count(k) for k in (PENDING, READY, UNREADABLE)] == [1, 2, 0]
    assert s.images[0].error is None and model.data(index, 3).endswith("400 × 300 px")
    model.set_thumbnail(0, tiny_qimage(), None)  # the same image twice counts once
    assert [model.count(k) for k in (PENDING, READY, UNREADABLE)] == [1, 2, 0] and s.images[0].size == (400, 300)
    assert s.unreadable_count == 0 and model.row_of(s.images[1].path) == 1 and model.row_of(Path("/x")) == -1


def test_an_unreadable_file_gets_a_tile_and_is_counted_in_the_labels(panel, pool, tmp_path):
    folder = make_sample_folder(tmp_path, "S", count=2, size=40, broken=True)
    panel.open_paths([folder])
    pool.run_all()
    s = panel.current_sample()
    model = panel.model_for(s)
    assert [model.count(k) for k in (PENDING, READY, UNREADABLE)] == [0, 2, 1]
    assert s.unreadable_count == 1 and s.images[2].name == "cell_99.jpg" and s.images[2].error
    assert panel.sample_list.item(0).text() == "S  (3 images, 1 unreadable)"
    assert "1 unreadable" in panel.images_label.text() and "loading" not in panel.images_label.text()
    assert not model.data(model.index(2), 1).isNull()  # DecorationRole: the drawn tile


def test_a_thumbnail_task_that_crashes_marks_the_image_unreadable_and_shows_the_error(panel, pool, dialogs,
                                                                                      monkeypatch):
    def crash(path, size):
        raise RuntimeError("decoder crashed")

    monkeypatch.setattr("gui.sample_list.make_thumbnail", crash)
    s = panel.add_sample(sample("S", 1))
    pool.run_all()
    assert s.images[0].state == UNREADABLE
    assert s.images[0].error == "unexpected error (RuntimeError: decoder crashed)"
    assert len(dialogs) == 1 and "decoder crashed" in dialogs[0]["text"]


@pytest.mark.parametrize("split", [True, False])
def test_a_folder_of_sample_folders_opens_as_one_sample_each_when_the_person_agrees(panel, pool, tmp_path, split):
    day = tmp_path / "day"
    make_sample_folder(day, "S-1", count=2, size=40)
    make_sample_folder(day, "S-2", count=1, size=40)
    asked: list[tuple[Path, list[Path]]] = []
    panel.confirm_split = lambda folder, subfolders: asked.append((folder, subfolders)) or split
    panel.open_paths([day])
    pool.run_all()
    assert asked == [(day, [day / "S-1", day / "S-2"])]
    if split:
        assert sorted((s.sample_id, len(s.images), s.folder) for s in panel.samples) == [
            ("S-1", 2, day / "S-1"), ("S-2", 1, day / "S-2")]
    else:
        assert [(s.sample_id, len(s.images)) for s in panel.samples] == [("day", 3)]


def test_a_closed_sample_leaves_the_list_and_the_next_one_is_selected(panel, pool, tmp_path):
    for name in ("S-1", "S-2", "S-3"):
        panel.open_paths([make_sample_folder(tmp_path, name, count=1, size=40)])
        pool.run_all()
    assert [s.sample_id for s in panel.samples] == ["S-3", "S-2", "S-1"] and panel.current_sample().sample_id == "S-3"
    middle = panel.samples[1]
    assert panel.remove_sample(middle) and [s.sample_id for s in panel.samples] == ["S-3", "S-1"]
    assert panel.current_sample().sample_id == "S-3"  # not the current one: the selection stays
    assert panel.remove_sample(panel.current_sample())
    assert panel.current_sample().sample_id == "S-1" and panel.sample_list.count() == 1
    assert not panel.remove_sample(middle)  # not listed any more
    assert panel.remove_sample(panel.current_sample()) and panel.current_sample() is None


def test_the_thumbnails_on_show_are_decoded_first_and_the_rest_a_few_at_a_time(qtbot, pool):
    panel = SamplesPanel(pool, default_operator="T. Tester")
    qtbot.addWidget(panel)
    panel.resize(400, 500)
    panel.show()
    qtbot.waitExposed(panel)
    s = panel.add_sample(sample("S", 300))
    qtbot.wait(200)  # the view paints its first rows: each asks for its thumbnail
    asked = sorted(int(args[0].stem) for _name, _fn, args, *_ in pool.tasks)
    # The rows on show come first (Qt's icon-mode layout also asks for the last row once), and
    # only OFFSCREEN_IN_FLIGHT of the others are in the pool at a time.
    assert set(range(5)) <= set(asked) and len(asked) <= 40
    assert len(pool.tasks) == len(set(asked))  # none asked for twice
    pool.run_all()  # each delivery feeds the next: all of them end up decoded, once each
    assert all(im.state != PENDING for im in s.images)


def test_off_screen_thumbnails_wait_while_paused_and_those_on_show_do_not(qtbot, pool):
    panel = SamplesPanel(pool, default_operator="T. Tester")
    qtbot.addWidget(panel)
    panel.pause_offscreen_thumbnails(True)
    s = panel.add_sample(sample("S", 50))
    # Held, all but the row the view's layout asks about (the last: Qt's icon mode sizes its grid by it).
    assert [args[0] for _name, _fn, args, *_ in pool.tasks] == [s.images[-1].path]
    model = panel.model_for(s)
    model.data(model.index(7), Qt.ItemDataRole.DecorationRole)  # a view paints row 7
    assert [args[0] for _name, _fn, args, *_ in pool.tasks][1:] == [s.images[7].path]
    pool.run_all()
    assert [im.state != PENDING for im in s.images].count(True) == 2
    panel.pause_offscreen_thumbnails(False)
    assert len(pool.tasks) == 2  # fed a few at a time again
    pool.run_all()
    assert all(im.state != PENDING for im in s.images)
