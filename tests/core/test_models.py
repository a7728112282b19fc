import pickle

import pytest

from pipeline.core.models.churn import ChurnModel
from pipeline.core.models.sentiment import SentimentModel, stars_to_label
from pipeline.core.models.text import language, tokens
from pipeline.core.profile import DAY_MS, CustomerState, Purchase


@pytest.mark.parametrize("text, sign", [
    ("I love it, excellent quality and fast delivery!", 1),
    ("Terrible. Broken on arrival and support was rude.", -1),
    ("This is not good at all", -1),
])
def test_warm_start_gives_the_right_sign_on_clear_english(text, sign):
    s = SentimentModel().score(text)
    assert s.score * sign > 0.2 and s.language == "en"


def test_unreadable_language_gets_a_low_confidence_neutral_score_at_first():
    s = SentimentModel().score("配送が遅すぎます")
    assert (s.label, s.language, s.score) == ("neutral", "und", 0) and s.confidence <= 0.6


@pytest.mark.parametrize("text", ["배송이 너무 늦고 상담원도 불친절해요 ㅠㅠ", "최악이에요. 다시는 안 삽니다",
                                  "돈이 아까워요 비추합니다", "제품이 불량이라 환불 요청했어요"])
def test_a_clear_korean_complaint_scores_negative_from_the_first_event(text):
    s = SentimentModel().score(text)
    assert s.language == "ko" and s.label == "negative" and s.score < -0.3


@pytest.mark.parametrize("positive, negated", [("좋아요", "안 좋아요"), ("좋아요", "좋지 않아요"),
                                               ("만족해요", "만족하지 못했어요"), ("맞아요 잘 맞네요", "사이즈가 안 맞아요")])
def test_korean_negation_flips_the_sign(positive, negated):
    m = SentimentModel()
    assert m.score(positive).score > 0 > m.score(negated).score


@pytest.mark.parametrize("text, lang", [("배송 fast 좋아요", "ko"), ("Great 제품 but 배송이 늦어요", "ko"),
                                        ("I love this brand 최고", "en"), ("ㅋㅋㅋ", "ko"), ("12345", "und")])
def test_language_detection_on_mixed_texts(text, lang):
    assert language(text) == lang


def test_mixed_text_uses_both_lexicons():
    s = SentimentModel().score("The delivery was terrible 진짜 최악")
    assert s.score < -0.5


def test_learning_from_ratings_moves_korean_scores():
    m = SentimentModel(warmup=20)
    for _ in range(30):
        m.learn("정말 좋아요 만족합니다", "positive")
        m.learn("너무 별로예요 실망입니다 ㅠㅠ", "negative")
    assert m.score("별로예요 ㅠㅠ").score < 0 < m.score("좋아요 만족").score


def test_stars_to_labels():
    assert [stars_to_label(r) for r in range(1, 6)] == ["negative", "negative", "neutral", "positive", "positive"]


def test_korean_laughter_and_crying_survive_as_features():
    feats = tokens("좋아요 ㅋㅋㅋㅋ / 별로 ㅠㅠ")
    assert "j:ㅋㅋ" in feats and "j:ㅠㅠ" in feats and language("ㅋㅋ good") == "ko"


def test_sentiment_model_pickles_and_keeps_what_it_learned():
    m = SentimentModel(warmup=5)
    for _ in range(10):
        m.learn("awful product", "negative")
    clone = pickle.loads(pickle.dumps(m))
    assert clone.score("awful product") == m.score("awful product") and clone.version == m.version


def test_churn_label_uses_only_purchases_up_to_the_horizon():
    """A purchase after snapshot + H must not count as 'stayed'; one inside must."""
    st = CustomerState("c", 0, 0)
    st.purchase(Purchase(0, 100.0, "web", "e"), "KRW", 1)
    st.purchase(Purchase(95 * DAY_MS, 100.0, "web", "e"), "KRW", 1)  # after the 90-day horizon of a day-0 snapshot
    assert not st.purchased_between(0, 90 * DAY_MS)
    assert st.purchased_between(0, 96 * DAY_MS)


def test_churn_snapshot_is_labelled_only_once_the_watermark_passes_its_horizon():
    from tests.helpers import click, make_engine, order, run

    engine = make_engine(churn_horizon_days=1, model_epoch_hours=1)
    labels = lambda: engine.learner.model.learned + sum(map(len, engine.learner.pending.values()))  # noqa: E731
    run(engine, order(0, {"user_id": "c"}), click(24 * 60 + 4, {"user_id": "d"}, "page_view"))
    assert labels() == 0  # the watermark (5 minutes behind) is just short of the first snapshot's horizon
    run(engine, click(24 * 60 + 6, {"user_id": "d"}, "page_view"))
    assert labels() == 1


def test_churn_features_never_see_the_future():
    st = CustomerState("c", 0, 0)
    st.purchase(Purchase(10 * DAY_MS, 100.0, "web", "e"), "KRW", 1)
    st.purchase(Purchase(50 * DAY_MS, 100.0, "web", "e"), "KRW", 1)
    x = st.features(20 * DAY_MS)
    assert x["purchases"] == 1 and x["recency_days"] == 10


def test_engine_churn_labels_wait_for_the_horizon_and_are_learned_once_their_epoch_is_complete():
    from tests.helpers import make_engine, order, run

    engine = make_engine(churn_horizon_days=1, model_epoch_hours=1)
    run(engine, order(0, {"user_id": "u1"}))
    assert engine.pending_snapshots == 1 and engine.churn.learned == 0
    run(engine, order(60 * 23, {"user_id": "u2"}))
    assert engine.churn.learned == 0  # 23 h later: label not known yet
    run(engine, order(60 * 24 + 6, {"user_id": "u3"}))
    assert engine.pending_snapshots == 2 and engine.churn.learned == 0  # due, but its epoch is not over
    run(engine, order(60 * 25 + 6, {"user_id": "u4"}))
    assert engine.churn.learned == 1


def test_churn_model_pickles():
    m = ChurnModel(horizon_ms=10)
    m.learn({"recency_days": 5.0}, True)
    assert pickle.loads(pickle.dumps(m)).predict({"recency_days": 5.0}) == m.predict({"recency_days": 5.0})


def test_sentiment_model_state_stays_bounded_whatever_the_vocabulary():
    from pipeline.core.models.sentiment import FEATURE_BUCKETS

    def word(n: int) -> str:
        return "".join(chr(97 + (n // 26**i) % 26) for i in range(4))

    m = SentimentModel(warmup=10)
    for n in range(3000):
        m.learn(f"{word(n)} {word(n + 5000)} {word(n + 10000)}", "positive" if n % 2 else "negative")
    st = m.langs["en"]
    buckets = st.counts.keys()
    assert 1000 < len(buckets) <= FEATURE_BUCKETS  # about 9,000 distinct words and their bigrams, hashed
    assert all(0 <= b < FEATURE_BUCKETS for b in buckets) and len(st.w) == 4


def test_prequential_figures_and_drift_are_tracked_from_the_labels():
    m = SentimentModel(warmup=50)
    drifted = 0
    for n in range(1500):
        text = "great product" if n % 2 else "awful product"
        label = ("positive" if n % 2 else "negative") if n < 700 else ("negative" if n % 2 else "positive")
        drifted += m.learn(text, label, m.score(text))  # the labels' meaning flips half-way
    figures = m.monitor.figures()
    assert m.monitor.labels == 1500 and 0 <= figures["accuracy"] <= 1 and figures["logloss"] > 0
    assert drifted >= 1 and m.monitor.drifts == drifted


def test_churn_model_scores_each_snapshot_before_learning_its_label():
    m = ChurnModel(horizon_ms=10, warmup=1)
    for n in range(200):
        m.learn({"recency_days": float(n % 60)}, n % 60 > 30)
    assert m.monitor.labels == 200 and set(m.monitor.figures()) == {"accuracy", "logloss", "roc_auc"}


# --- Korean reading (Kiwi morphemes + the shipped prior) and the online combination -------------

@pytest.mark.parametrize("text, sign", [
    ("정말 재밌고 감동적이었어요", 1), ("배송 빠르고 품질 최고예요", 1), ("완전 강추합니다 ㅎㅎ", 1),
    ("시간 낭비였어요 진짜 지루함", -1), ("이걸 돈 주고 샀다니 후회됩니다", -1), ("최악의 서비스", -1),
])
def test_the_shipped_prior_reads_korean_from_the_first_event(text, sign):
    s = SentimentModel().score(text)
    assert s.language == "ko" and s.score * sign > 0.2


def test_the_shipped_prior_is_compact_and_loaded_once():
    from importlib import resources

    from pipeline.core.models import prior

    data = resources.files("pipeline.core.models").joinpath("data", prior.SHIPPED)
    assert data.stat().st_size < 3_000_000 if hasattr(data, "stat") else True
    assert prior.shipped() is prior.shipped() and len(prior.shipped().weights) > 10_000


@pytest.mark.parametrize("text, negated", [("안 좋아요", "좋/VA"), ("좋지 않아요", "좋/VA"), ("만족하지 못했어요", "만족/NNG"),
                                           ("재미없진 않았어요", None)])
def test_negation_is_marked_on_the_predicate_it_scopes(text, negated):
    from pipeline.core.models.morphemes import features

    f = features(text)
    if negated:
        assert f"m:NOT_{negated}" in f and f"m:{negated}" not in f


def test_mixed_korean_and_english_texts_read_both():
    m = SentimentModel()
    assert m.score("배송 fast 좋아요 최고").score > 0 > m.score("Great 디자인 but 배송이 너무 늦고 불친절해요 ㅠㅠ").score
    assert m.score("I love this brand 정말 최고").score > 0.2


def test_pickling_keeps_what_was_learned_and_leaves_the_shipped_prior_out():
    m = SentimentModel(warmup=5)
    for _ in range(20):
        m.learn("정말 별로예요 비추", "negative", m.score("정말 별로예요 비추"))
        m.learn("아주 마음에 들어요", "positive", m.score("아주 마음에 들어요"))
    blob = pickle.dumps(m)
    clone = pickle.loads(blob)
    assert len(blob) < 100_000  # the prior ships with the package, not in every checkpoint
    for text in ("정말 별로예요", "마음에 들어요", "so so", "!!!"):
        assert clone.score(text) == m.score(text)
    assert clone.version == m.version and clone.langs["ko"].w == m.langs["ko"].w


def test_the_model_is_deterministic_whatever_its_caches_hold():
    from pipeline.core.models import morphemes

    stream = [("배송이 늦었지만 제품은 좋아요", "positive"), ("다시는 안 사요", "negative"), ("그냥 그래요", "neutral"),
              ("Works great, love it", "positive"), ("Broke in a week", "negative")] * 40

    def run() -> list:
        m = SentimentModel(warmup=10)
        out = []
        for text, label in stream:
            s = m.score(text)
            m.learn(text, label, s)
            out.append(s)
        return out + [m.score("좋지도 나쁘지도 않아요"), m.score("not bad at all")]

    first = run()
    morphemes._cache.clear()
    assert run() == first


def test_score_then_learn_reads_a_text_once_and_known_words_are_not_analysed_again(monkeypatch):
    from pipeline.core.models import morphemes

    m = SentimentModel()  # loads the analysers
    calls = []
    real = morphemes.analyser

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(morphemes, "analyser", counting)
    text = "새로 나온 신상품인데 생각보다 훨씬 괜찮네요 ㅋㅋ"
    m.learn(text, "positive", m.score(text))
    first = len(calls)
    assert 0 < first <= len(text.split())  # at most one analysis per word, shared by score and learn
    m.learn(text, "positive", m.score(text))
    m.score(text + " 진짜로")
    assert len(calls) <= first + 1  # only the new word


def test_learning_takes_over_when_the_ratings_disagree_with_the_priors():
    """A brand whose customers use a word the priors misread: the combination learns it."""
    m = SentimentModel(warmup=20)
    text_pos, text_neg = "가격이 미쳤어요 대박", "그냥 무난무난 평범 그 자체"
    for _ in range(300):
        m.learn(text_pos, "positive", m.score(text_pos))
        m.learn(text_neg, "negative", m.score(text_neg))
    assert m.score(text_pos).label == "positive" and m.score(text_neg).label == "negative"
    assert m.langs["ko"].w[2] > 0.05  # the online naive Bayes' weight grew


def test_building_the_prior_is_reproducible():
    import io

    from pipeline.core.models.prior import KoreanPrior

    pairs = [("정말 좋아요", True), ("별로예요", False), ("최고의 영화", True), ("지루하고 별로", False)] * 5
    blobs = []
    for _ in range(2):
        buf = io.BytesIO()
        KoreanPrior.fit(pairs).dump(buf)
        blobs.append(buf.getvalue())
    assert blobs[0] == blobs[1] and KoreanPrior.load(io.BytesIO(blobs[0])).log_odds({"m:좋/VA": 1.0}) > 0


def test_the_shipped_word_table_gives_what_the_analyser_gives():
    from pipeline.core.models import morphemes

    morphemes.analyser()
    table = morphemes._table
    assert len(table) > 50_000 and "배송이" in table
    sample = sorted(table)[::2000]
    assert all(morphemes._analyse(w) == table[w] for w in sample)  # the table changes speed, never results


def test_the_cheaper_vader_gives_vaders_scores():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from pipeline.core.models.vader import Vader
    from pipeline.drivers.eval_texts import EN

    texts = [t for _, t in EN] + ["not good at all", "NEVER so good!!", "without doubt great", "kind of ok but bad",
                                  "at least it works", "I ❤️ it 😀", "no problems, no complaints", "Isn't bad :)"]
    fast, slow = Vader(), SentimentIntensityAnalyzer()
    assert all(fast.polarity_scores(t) == slow.polarity_scores(t) for t in texts)


def test_checkpoints_with_the_old_naive_bayes_counts_restore():
    m = SentimentModel(warmup=5)
    for _ in range(10):
        m.learn("great stuff", "positive", m.score("great stuff"))
        m.learn("awful stuff", "negative", m.score("awful stuff"))
    state = m.langs["en"].__dict__.copy()
    state["counts"] = {b: (v >> 32, v & 0xFFFFFFFF) for b, v in state["counts"].items()}  # (pos, neg) tuples
    clone = pickle.loads(pickle.dumps(m))
    clone.langs["en"].__setstate__(state)
    assert clone.langs["en"].counts == m.langs["en"].counts and clone.score("great") == m.score("great")


def test_our_adwin_and_figures_match_rivers_and_old_checkpoints_still_load():
    """The monitor computes its figures itself and runs ADWIN on river's Rust core (no scipy at start-up):
    the same drifts as ``river.drift.ADWIN``, the same rolling accuracy and log-loss as ``river.metrics``,
    and a monitor pickled with river's metrics inside still loads (its figures start afresh)."""
    import pickle
    import random

    from river import drift, metrics, utils

    from pipeline.core.models.monitor import Adwin, Prequential

    rng, ours, theirs = random.Random(1), Adwin(), drift.ADWIN()
    for i in range(3000):
        x = float(rng.random() < (0.1 if i < 1500 else 0.6))
        ours.update(x)
        theirs.update(x)
        assert ours.drift_detected == theirs.drift_detected
    m = Prequential(window=300, binary=True)
    acc, loss = utils.Rolling(metrics.Accuracy, window_size=300), utils.Rolling(metrics.LogLoss, window_size=300)
    for _ in range(1000):
        y = rng.random() < 0.4
        p = min(1.0, max(0.0, 0.4 + (0.3 if y else -0.1) + rng.gauss(0, 0.25)))
        m.update(y, p >= 0.5, p)
        acc.update(y, p >= 0.5)
        loss.update(y, p)
    assert abs(m.figures()["accuracy"] - acc.get()) < 1e-9
    assert abs(m.figures()["logloss"] - loss.get()) < 1e-4  # (their clipping at 0 and 1 differs slightly)
    old = Prequential.__new__(Prequential)
    old.__dict__.update({"name": "churn", "accuracy": acc, "logloss": loss, "adwin": theirs, "labels": 7,
                         "drifts": 1, "auc": metrics.RollingROCAUC(window_size=300)})
    restored = pickle.loads(pickle.dumps(old))
    assert (restored.labels, restored.drifts, restored.binary) == (7, 1, True)
    assert restored.update(True, True, 0.9) is False and restored.figures()["accuracy"] == 1.0
