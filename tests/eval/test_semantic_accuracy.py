import pytest

from llm_aac.eval.semantic_accuracy import (
    format_table,
    parse_caption,
    score_caption,
    semantic_accuracy,
    semantic_accuracy_by_split,
)
from llm_aac.processing.synthetic import SPLITS, generate_clip


def _event(event_type, start, end, count=1, loudness="normal", fade="none", rate="", background=False):
    return {"type": event_type, "start": start, "end": end, "count": count, "loudness": loudness, "fade": fade,
            "rate": rate, "background": background}


def _summary(caption):
    return {e.type: (e.count, e.loudness, e.fade, e.rate, e.background, e.position)
            for e in parse_caption(caption).events}


def test_parse_sequence_with_counts_and_loudness():
    assert _summary("A loud high pitched beep sounds twice, then a bell rings.") == {
        "high_beep": (2, "loud", "none", "", False, 0),
        "bell": (1, "normal", "none", "", False, 1),
    }
    assert _summary("First three quiet knocks are heard, then a siren goes down in pitch, and finally a bird "
                    "tweets thrice.") == {
        "knocking": (3, "quiet", "none", "", False, 0),
        "falling_siren": (1, "normal", "none", "", False, 1),
        "bird_chirp": (3, "normal", "none", "", False, 2),
    }


def test_parse_reversed_order_and_background():
    # "B after A": A comes first in time.
    assert _summary("Two chimes ring after a deep beep sounds once.") == {
        "bell": (2, "normal", "none", "", False, 1),
        "low_beep": (1, "normal", "none", "", False, 0),
    }
    assert _summary("After a bird chirps, a siren rises loudly in pitch.") == {
        "bird_chirp": (1, "normal", "none", "", False, 0),
        "rising_siren": (1, "loud", "none", "", False, 1),
    }
    assert _summary("While rain falls and fades in, a shrill beep goes off, then someone knocks on a door twice.") == {
        "hiss": (None, "normal", "in", "", True, None),
        "high_beep": (1, "normal", "none", "", False, 0),
        "knocking": (2, "normal", "none", "", False, 1),
    }
    assert _summary("A bell tolls three times with the faint hum of an engine in the background.") == {
        "bell": (3, "normal", "none", "", False, 0),
        "engine_hum": (None, "quiet", "none", "", True, None),
    }
    assert _summary("Two low beeps sound over slow ticking.")["ticking"] == (None, "normal", "none", "slow", True, None)


def test_parse_continuous_attributes():
    assert _summary("A clock ticks loudly and rapidly and gradually dies down.") == {
        "ticking": (None, "loud", "out", "fast", False, 0)}
    assert _summary("Static crackles quietly and slowly gets louder.") == {"hiss": (None, "quiet", "in", "", False, 0)}
    assert _summary("A motor drones, fading away.")["engine_hum"][2] == "out"  # attributes of a verb-less clause


def test_parse_is_robust_to_missing_and_odd_words():
    # No count word: a countable event happened once; no connective: text order.
    assert _summary("bell bird") == {"bell": (1, "normal", "none", "", False, 0),
                                     "bird_chirp": (1, "normal", "none", "", False, 1)}
    # A beep without pitch or a siren without direction cannot be identified.
    assert _summary("A beep sounds twice, then a siren wails.") == {}
    assert _summary("") == {} and _summary(None) == {}
    parsed = parse_caption("A bell rings, then a bell rings again.")
    assert [e.type for e in parsed.events] == ["bell"] and parsed.duplicates == 1
    with pytest.raises(TypeError, match="caption must be a string"):
        parse_caption(3)


def test_scores_on_hand_written_predictions():
    truth = [_event("high_beep", 1.0, 1.8, count=2), _event("bell", 3.0, 6.0, count=1), _event("hiss", 7.0, 10.0)]
    perfect = score_caption("A high pitched beep sounds twice, then a bell rings, then rain falls.", truth).metrics()
    assert perfect["event_f1"] == 1.0 and perfect["scene_accuracy"] == 1.0
    assert perfect["order_items"] == 3 and perfect["overlap_items"] == 3

    # Wrong count, rain in the wrong place (overlapping instead of last), an extra bird.
    metrics = score_caption("A high pitched beep sounds three times, then a bell rings while rain falls, then a "
                            "bird chirps.", truth).metrics()
    assert metrics["event_precision"] == pytest.approx(3 / 4)
    assert metrics["event_recall"] == 1.0
    assert metrics["event_f1"] == pytest.approx(6 / 7)
    assert metrics["count_accuracy"] == 0.5  # beep wrong, bell right
    assert metrics["overlap_accuracy"] == pytest.approx(1 / 3)  # beep-bell right; both pairs with rain wrong
    assert metrics["order_accuracy"] == pytest.approx(1 / 3)
    assert metrics["scene_accuracy"] == 0.0

    # Reversed order of two sequential events.
    swapped = score_caption("A bell rings, then a high beep sounds twice.", truth[:2]).metrics()
    assert swapped["order_accuracy"] == 0.0 and swapped["overlap_accuracy"] == 1.0 and swapped["event_f1"] == 1.0


def test_blank_prediction_and_aggregation():
    rows = [
        {"events": [_event("bell", 1.0, 3.0, count=2)], "split": "test"},
        {"events": [_event("engine_hum", 0.5, 9.0, background=True), _event("knocking", 2.0, 2.5, count=3)],
         "split": "compositional"},
    ]
    predictions = ["Two bells ring.", ""]
    metrics = semantic_accuracy(predictions, rows)
    assert metrics["event_precision"] == 1.0 and metrics["event_recall"] == pytest.approx(1 / 3)
    assert metrics["count_accuracy"] == 1.0 and metrics["order_accuracy"] is None
    assert metrics["scene_accuracy"] == 0.5 and metrics["num_clips"] == 2

    by_split = semantic_accuracy_by_split(predictions, rows)
    assert by_split["test"]["event_f1"] == 1.0 and by_split["compositional"]["event_f1"] == 0.0
    assert by_split["compositional"]["event_precision"] is None
    same = semantic_accuracy_by_split({"test": ["Two bells ring."]}, {"test": [rows[0]]})
    assert same["test"] == by_split["test"]
    assert "| compositional |" in format_table(by_split)

    with pytest.raises(ValueError, match="2 predictions for 1"):
        semantic_accuracy(predictions, rows[:1])
    with pytest.raises(TypeError, match="prediction 0 must be a string"):
        semantic_accuracy([5], rows[:1])
    with pytest.raises(TypeError, match="single string"):
        semantic_accuracy("Two bells ring.", rows[:1])
    with pytest.raises(ValueError, match="lacks keys"):
        semantic_accuracy(["x"], [[{"type": "bell"}]])
    with pytest.raises(ValueError, match="no ground truth for split"):
        semantic_accuracy_by_split({"validation": []}, {"test": []})


def test_every_reference_caption_parses_back_perfectly():
    # Round trip: all five references of generated clips, every split, score 1.0 on everything.
    for split in SPLITS:
        clips = [generate_clip(11, i, split, with_audio=False) for i in range(40)]
        for k in range(5):
            metrics = semantic_accuracy([c["captions"][k] for c in clips], clips)
            for name in ("event_f1", "count_accuracy", "order_accuracy", "overlap_accuracy", "loudness_accuracy",
                         "fade_accuracy", "rate_accuracy", "scene_accuracy"):
                assert metrics[name] in (1.0, None), (split, k, name, metrics)
            assert metrics["event_f1"] == 1.0 and metrics["scene_accuracy"] == 1.0


def test_captions_of_other_clips_score_low():
    clips = [generate_clip(12, i, "test", with_audio=False) for i in range(30)]
    shifted = [clips[(i + 1) % len(clips)]["captions"][0] for i in range(len(clips))]
    assert semantic_accuracy(shifted, clips)["scene_accuracy"] < 0.1


def test_reads_ground_truth_from_a_dataset_without_touching_audio():
    from datasets import Dataset

    clips = [generate_clip(13, i, "validation", with_audio=False) for i in range(4)]
    dataset = Dataset.from_list([{"events": c["events"], "audio": b"not audio", "split": c["split"]} for c in clips])
    metrics = semantic_accuracy([c["captions"][2] for c in clips], dataset)
    assert metrics["scene_accuracy"] == 1.0
    with pytest.raises(ValueError, match="no 'events' column"):
        semantic_accuracy(["x"], Dataset.from_list([{"text": "x"}]))
