"""Registration specs of the text envs (read by :mod:`rlseek.envs.registration`)."""

SPECS = [
    {
        "id": "rlseek/Arithmetic-v0",
        "entry_point": "rlseek.envs.text.env:ArithmeticEnv",
        "kind": "text",
    },
    {
        "id": "rlseek/Reviews-v0",
        "entry_point": "rlseek.envs.text.env:ReviewsEnv",
        "kind": "text",
    },
]
