"""The sentiment eval's plumbing, on small made-up inputs (the real data is read by ``make eval``)."""
import io
import tarfile

from pipeline.core.models.sentiment import SentimentModel
from pipeline.drivers import build_prior, eval_sentiment


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_vader_snippets_are_read_from_the_cached_sdist(tmp_path, monkeypatch):
    inner = _tar({f"hutto_ICWSM_2014/{name}_GroundTruth.txt": b"1\t2.5\tGreat stuff\r\n2\t-1.2\tAwful\r\n3\t0.1\tOk\r\n"
                  for name in eval_sentiment.VADER_SETS})
    sdist = tmp_path / "vader-sdist" / "vaderSentiment-3.3.2.tar.gz"
    sdist.parent.mkdir()
    sdist.write_bytes(_tar({"vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": inner}))
    monkeypatch.setenv("RAPPORT_CACHE", str(tmp_path))
    items = eval_sentiment.vader_snippets()
    assert [(label, judged) for _, _, label, judged in items[:3]] == [("positive", True), ("negative", True),
                                                                      ("neutral", False)]
    assert items[0][1] == "Great stuff" and len(items) == 3 * len(eval_sentiment.VADER_SETS)


def test_the_stream_is_fixed_and_only_unrated_judged_texts_are_judged():
    items = [(str(i), "good" if i % 2 else "bad", "positive" if i % 2 else "negative", i % 3 != 0) for i in range(200)]
    stream = eval_sentiment.ordered(items)
    assert stream == eval_sentiment.ordered(reversed(items)) and 60 < sum(s[2] for s in stream) < 140
    hits, cost = eval_sentiment.run_stream(stream, SentimentModel(warmup=5), {})
    judged = sum(1 for _, _, rated, j in stream if j and not rated)
    assert len(hits["model"]) == judged and len(cost) == sum(s[2] for s in stream)


def test_the_korean_split_keeps_each_movie_on_one_side():
    rows = [{"movie_id": str(i % 50), "text": "t", "rating10": 1} for i in range(500)]
    train, held = build_prior.split(rows)
    assert not {r["movie_id"] for r in train} & {r["movie_id"] for r in held} and train and held
