"""Short product and restaurant reviews from a seeded grammar, for ``rlseek/Reviews-v0``.

A review is a header (``"Review of the desk lamp:"``), an *opening stem* that stops just before
the first judgement (``"After two weeks, the light is"``), then a predicate and one to three
more sentences whose polarity follows the review's sentiment (positive, negative or neutral;
one sentence in five goes against it, as real reviews do). The env's prompt is the header plus
the stem; the completion is the model's continuation. The same grammar writes the pre-training
corpus of the bundled tiny LM, so that model starts with reviews of mixed sentiment.
"""

from __future__ import annotations

import numpy as np

from rlseek.envs.text.split import is_heldout

TASK = "reviews"
SENTIMENTS = ("positive", "negative", "neutral")

PRODUCTS: dict[str, tuple[str, ...]] = {
    "wireless headphones": ("sound", "battery", "fit", "case"),
    "coffee grinder": ("grind", "motor", "noise level", "lid"),
    "desk lamp": ("light", "switch", "base", "cable"),
    "hiking backpack": ("zipper", "straps", "fabric", "pockets"),
    "blender": ("motor", "jar", "blades", "noise level"),
    "office chair": ("seat", "armrests", "wheels", "backrest"),
    "electric kettle": ("handle", "lid", "heating time", "switch"),
    "phone case": ("grip", "buttons", "edges", "finish"),
    "rice cooker": ("timer", "inner pot", "lid", "rice"),
    "running shoes": ("sole", "laces", "cushioning", "fit"),
    "bluetooth speaker": ("sound", "battery", "bass", "buttons"),
    "air fryer": ("basket", "timer", "fan", "coating"),
    "mechanical keyboard": ("keys", "switches", "cable", "backlight"),
    "water bottle": ("cap", "seal", "finish", "handle"),
    "winter jacket": ("zipper", "lining", "hood", "pockets"),
    "robot vacuum": ("suction", "battery", "app", "brushes"),
    "tent": ("poles", "fabric", "zipper", "stakes"),
    "toaster": ("slots", "timer", "crumb tray", "buttons"),
    "smart watch": ("screen", "battery", "strap", "app"),
    "frying pan": ("coating", "handle", "base", "lid"),
    "umbrella": ("canopy", "handle", "frame", "button"),
    "gaming mouse": ("sensor", "buttons", "cable", "scroll wheel"),
    "yoga mat": ("grip", "thickness", "strap", "surface"),
    "suitcase": ("wheels", "handle", "zipper", "lock"),
}
RESTAURANTS: dict[str, tuple[str, ...]] = {
    "the Golden Fork": ("pasta", "service", "dessert", "wine list"),
    "Blue Harbor Cafe": ("coffee", "staff", "pastries", "music"),
    "Luigi's Trattoria": ("pizza", "waiter", "tiramisu", "portions"),
    "the Spice Garden": ("curry", "service", "naan", "prices"),
    "Sakura Sushi Bar": ("sushi", "staff", "miso soup", "rice"),
    "the Corner Diner": ("burger", "fries", "milkshake", "waitress"),
    "Casa Verde": ("tacos", "salsa", "service", "prices"),
    "the Old Mill Pub": ("fish and chips", "beer", "staff", "music"),
    "Noodle House": ("ramen", "broth", "service", "dumplings"),
    "the Green Bowl": ("salad", "smoothie", "staff", "portions"),
    "Le Petit Bistro": ("steak", "waiter", "bread", "wine list"),
    "the Harbor Grill": ("salmon", "service", "view", "prices"),
    "Mama Rosa's": ("lasagna", "staff", "garlic bread", "portions"),
    "the Morning Bakery": ("croissants", "coffee", "staff", "prices"),
    "Seoul Kitchen": ("bibimbap", "kimchi", "service", "portions"),
    "the Red Lantern": ("dumplings", "noodles", "waiter", "tea"),
}

WHEN = ("last week", "two weeks ago", "a month ago", "yesterday", "last month", "in March",
        "on Friday", "over the weekend", "last year", "a few days ago")
DURATION = ("two weeks", "a month", "three days", "six months", "a year", "a few weeks",
            "ten days", "two months")
COMPANY = ("my family", "friends", "my partner", "two colleagues", "my parents", "a friend")

PRODUCT_HEADERS = ("Review of the {item}:", "{Item} review:", "My review of the {item}:",
                   "Customer review, {item}:")
RESTAURANT_HEADERS = ("Review of {place}:", "Restaurant review, {place}:",
                      "My visit to {place}:")
PRODUCT_STEMS = (
    "I bought this {item} {when}, and the {aspect} {is_}",
    "After {duration} of use, the {aspect} {is_}",
    "The {aspect} of this {item} {is_}",
    "Honestly, the {aspect} {is_}",
    "I have used it for {duration} and the {aspect} {is_}",
    "First impressions: the {aspect} {is_}",
    "I got it {when}. The {aspect} {is_}",
)
RESTAURANT_STEMS = (
    "We had dinner here {when}, and the {aspect} {was}",
    "I went with {company} {when}. The {aspect} {was}",
    "The {aspect} {was}",
    "We stopped by {when} and the {aspect} {was}",
    "Came here with {company}. Overall the {aspect} {was}",
    "Honestly, the {aspect} {was}",
)

# Predicates finishing the stem, then whole sentences, by polarity. Positive and negative words
# are common English judgement words (the sentiment lexicon in rlseek.rewards.text knows them);
# neutral ones avoid judgement words so that a neutral review scores about zero.
PREDICATES = {
    "positive": ("excellent.", "really good.", "better than I expected.", "great for the price.",
                 "perfect.", "amazing, I love it.", "solid and reliable.", "very nice."),
    "negative": ("terrible.", "disappointing.", "worse than I expected.", "not good at all.",
                 "awful.", "poor and cheap.", "broken already.", "a waste of money."),
    "neutral": ("okay.", "about average.", "fine, nothing special.", "as described.",
                "what you would expect.", "standard.", "acceptable for daily use."),
}
SENTENCES = {
    "positive": ("The {aspect} {is_} great too.", "The {aspect} work{s} perfectly.",
                 "I am happy with the {aspect}.", "The {aspect} feel{s} sturdy.",
                 "Even the {aspect} {is_} impressive."),
    "negative": ("The {aspect} {is_} bad too.", "The {aspect} stopped working.",
                 "I am disappointed with the {aspect}.", "The {aspect} feel{s} flimsy.",
                 "Even the {aspect} {is_} annoying."),
    "neutral": ("The {aspect} {is_} okay.", "The {aspect} {does} {its} job.",
                "The {aspect} {is_} about what I expected.", "The {aspect} {is_} fairly standard.",
                "Nothing to add about the {aspect}."),
}
CLOSINGS = {
    "positive": ("Highly recommended.", "I would buy it again.", "Great value.",
                 "Five stars from me.", "I love it."),
    "negative": ("I would not recommend it.", "I returned it.", "Avoid it.",
                 "One star.", "Very disappointed."),
    "neutral": ("It does the job.", "Three stars.", "It is what it is.",
                "Maybe I will update this later.", "No strong opinion."),
}
RESTAURANT_SENTENCES = {
    "positive": ("The {aspect} {was} delicious.", "The {aspect} {was} excellent as well.",
                 "We loved the {aspect}.", "The {aspect} {was} friendly and quick."),
    "negative": ("The {aspect} {was} bland.", "The {aspect} {was} awful as well.",
                 "We hated the {aspect}.", "The {aspect} {was} slow and rude."),
    "neutral": ("The {aspect} {was} okay.", "The {aspect} {was} as usual.",
                "We had the {aspect} too.", "The {aspect} {was} average."),
}
RESTAURANT_CLOSINGS = {
    "positive": ("We will be back.", "Highly recommended.", "A great evening.", "Five stars."),
    "negative": ("We will not be back.", "Not recommended.", "A disappointing evening.",
                 "One star."),
    "neutral": ("Maybe we will try it again.", "Three stars.", "An ordinary evening.",
                "It was fine."),
}


def _fill(template: str, aspect: str, **fields: str) -> str:
    """Format ``template`` with ``aspect`` and verb forms that agree with it in number."""
    plural = aspect.endswith("s") and not aspect.endswith("ss")
    return template.format(
        aspect=aspect, is_="are" if plural else "is", was="were" if plural else "was",
        s="" if plural else "s", does="do" if plural else "does", its="their" if plural else "its",
        **fields,
    )


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _sample_opening(rng: np.random.Generator) -> tuple[str, str, tuple[str, ...]]:
    """(domain, prompt, aspects): the header plus the stem that the completion continues."""
    if rng.random() < 0.5:
        item = _pick(rng, list(PRODUCTS))
        aspects = PRODUCTS[item]
        header = _pick(rng, PRODUCT_HEADERS).format(item=item, Item=item.capitalize())
        stem = _pick(rng, PRODUCT_STEMS)
        domain = "product"
    else:
        item = _pick(rng, list(RESTAURANTS))
        aspects = RESTAURANTS[item]
        header = _pick(rng, RESTAURANT_HEADERS).format(place=item)
        stem = _pick(rng, RESTAURANT_STEMS)
        domain = "restaurant"
    stem = _fill(stem, _pick(rng, aspects), item=item, when=_pick(rng, WHEN),
                 duration=_pick(rng, DURATION), company=_pick(rng, COMPANY))
    return domain, f"{header} {stem}", aspects


def sample_prompt(rng: np.random.Generator, heldout: bool = False) -> str:
    """A review opening from the training part (or the held-out part) of the prompt space."""
    while True:
        _domain, prompt, _aspects = _sample_opening(rng)
        if is_heldout(TASK, prompt) == heldout:
            return prompt


def sample_review(rng: np.random.Generator) -> tuple[str, str, str]:
    """A whole training review: (prompt, continuation, sentiment); the prompt is never held out.

    The continuation starts with a space, so ``prompt + continuation`` is the review text.
    """
    while True:
        domain, prompt, aspects = _sample_opening(rng)
        if not is_heldout(TASK, prompt):
            break
    sentiment = SENTIMENTS[int(rng.integers(3))]
    sentences = RESTAURANT_SENTENCES if domain == "restaurant" else SENTENCES
    closings = RESTAURANT_CLOSINGS if domain == "restaurant" else CLOSINGS

    def polarity() -> str:
        # One sentence in five goes against the review's overall sentiment.
        return sentiment if rng.random() < 0.8 else SENTIMENTS[int(rng.integers(3))]

    parts = [_pick(rng, PREDICATES[polarity()])]
    for _ in range(int(rng.integers(1, 3))):
        parts.append(_fill(_pick(rng, sentences[polarity()]), _pick(rng, aspects)))
    if rng.random() < 0.7:
        parts.append(_pick(rng, closings[sentiment]))
    return prompt, " " + " ".join(parts), sentiment
