r"""The project's own case table for math answer checking: (class, completion, gold, expected verdict).

Written for rlft (MATH / NuminaMath style golds as those datasets store them,
completions as models write them); ``expected`` is 1.0 (same answer), 0.0
(different) or ``None`` (the gold cannot be verified). Used by
``tests/test_rewards_math.py`` and ``make bench-rewards``, which scores rlft's
``accuracy``, TRL's ``accuracy_reward`` and math-verify's own parse/verify on it.
"""

from __future__ import annotations

CASES: list[tuple[str, str, str, float | None]] = [
    # -- LaTeX golds, the value stated another way --
    ("latex gold", r"The answer is $\boxed{0.375}$.", r"$\frac{3}{8}$", 1.0),
    ("latex gold", r"So we get \boxed{\frac{3}{8}}", r"$\frac{3}{8}$", 1.0),
    ("latex gold", r"\boxed{\frac{a}{3}+\frac{5}{3}}", r"\frac{a+5}{3}", 1.0),
    ("latex gold", r"\boxed{\frac{a+5}{4}}", r"\frac{a+5}{3}", 0.0),
    ("latex gold", r"Therefore the ratio is \boxed{7/4}.", r"$\frac{7}{4}$", 1.0),
    ("latex gold", r"Therefore the ratio is \boxed{4/7}.", r"$\frac{7}{4}$", 0.0),
    ("latex gold", r"\boxed{1.75}", r"\dfrac{7}{4}", 1.0),
    ("latex gold", r"\boxed{2\sqrt{3}}", r"$\sqrt{12}$", 1.0),
    ("latex gold", r"\boxed{3\sqrt{2}}", r"$\sqrt{12}$", 0.0),
    ("latex gold", r"\boxed{\frac{\sqrt{3}}{2}}", r"$\frac{\sqrt3}{2}$", 1.0),
    ("latex gold", r"\boxed{-\frac{1}{2}}", r"$-\frac12$", 1.0),
    ("latex gold", r"\boxed{\frac{1}{2}}", r"$-\frac12$", 0.0),
    ("latex gold", r"\boxed{\pi r^2}", r"$r^2\pi$", 1.0),
    ("latex gold", r"\boxed{10^{3}}", r"1000", 1.0),
    ("latex gold", r"\boxed{18.90}", r"\$18.90", 1.0),
    ("latex gold", r"\boxed{0.333}", r"\frac{1}{3}", 0.0),
    ("latex gold", "$$\\frac{\\sqrt{3}}{3}$$", r"\frac{1}{\sqrt{3}}", 1.0),
    # -- a final answer without \boxed --
    ("no box", "We simplify and obtain\n$\\frac{a}{3}+\\frac{5}{3}$", r"\frac{a+5}{3}", 1.0),
    ("no box", "Adding them up gives\n$\\frac{7}{4}$.", r"\frac{7}{4}", 1.0),
    ("no box", "Adding them up gives\n$\\frac{7}{5}$.", r"\frac{7}{4}", 0.0),
    ("no box", "So the ratio is\n7/4", r"\frac{7}{4}", 1.0),
    ("no box", "Final Answer: the smallest $k$ is 12.", "12", 1.0),
    ("no box", "Final Answer: the smallest $k$ is 13.", "12", 0.0),
    ("no box", "Final Answer: The final answer is $2\\sqrt{2}$. I hope it is correct.", r"\sqrt{8}", 1.0),
    ("no box", "The answer is $x = 5$.", "5", 1.0),
    ("no box", "Collecting terms, the polynomial is $x^2 + 2x + 1$", r"(x+1)^2", 1.0),
    ("no box", "Collecting terms, the polynomial is $x^2 + 2x - 1$", r"(x+1)^2", 0.0),
    ("no box", "answer: 2\\sqrt{2}", r"\sqrt{8}", 1.0),
    ("no box", "answer: 3\\sqrt{2}", r"\sqrt{8}", 0.0),
    ("no box", "so the answer is \\boxed 5", "5", 1.0),
    ("no box", "The answer is $5$ dollars.", "5", 1.0),
    ("no box", "Final Answer: The final answer is 5. I hope it is correct.", "5", 1.0),
    ("no box", "Final Answer: The final answer is 6. I hope it is correct.", "5", 0.0),
    ("no box", "We get $k = 4$.", "4", 1.0),
    # -- intervals: open and closed ends differ --
    ("interval", r"\boxed{[2,5)}", "[2,5)", 1.0),
    ("interval", r"\boxed{(2,5)}", "[2,5)", 0.0),
    ("interval", r"\boxed{[2,5]}", "[2,5)", 0.0),
    ("interval", r"\boxed{(-\infty, 3]}", r"(-\infty,3]", 1.0),
    ("interval", r"\boxed{(-\infty, 3)}", r"(-\infty,3]", 0.0),
    ("interval", r"\boxed{(-\infty,-1)\cup(2,\infty)}", r"(-\infty,-1) \cup (2,\infty)", 1.0),
    ("interval", r"\boxed{(-\infty,-1]\cup(2,\infty)}", r"(-\infty,-1) \cup (2,\infty)", 0.0),
    ("interval", r"\boxed{(3, \infty)}", "x > 3", 1.0),
    # -- sets and tuples, in any order; several answers --
    ("set/tuple", r"\boxed{(4,3)} and \boxed{(3,4)}", "(3,4),(4,3)", 1.0),
    ("set/tuple", r"\boxed{(4,3),(3,4)}", "(3,4),(4,3)", 1.0),
    ("set/tuple", r"\boxed{(3,4),(4,5)}", "(3,4),(4,3)", 0.0),
    ("set/tuple", r"The solutions are \boxed{3} and \boxed{5}.", "3, 5", 1.0),
    ("set/tuple", r"\boxed{5, 3}", "3, 5", 1.0),
    ("set/tuple", r"\boxed{3, 6}", "3, 5", 0.0),
    ("set/tuple", r"\boxed{3} or maybe \boxed{5}", "5", 0.0),  # a hedge for a one-answer question
    ("set/tuple", r"\boxed{\{1, 2, 3\}}", r"\{3, 2, 1\}", 1.0),
    ("set/tuple", r"\boxed{\{1, 2\}}", r"\{3, 2, 1\}", 0.0),
    ("set/tuple", r"\boxed{(1, 2)}", "(2, 1)", 0.0),  # a point is ordered
    ("set/tuple", r"\boxed{(3, \frac{\pi}{2})}", r"\left( 3, \frac{\pi}{2} \right)", 1.0),
    ("set/tuple", r"\boxed{(3, \frac{\pi}{3})}", r"\left( 3, \frac{\pi}{2} \right)", 0.0),
    ("set/tuple", r"\boxed{2, -2}", r"\pm 2", 1.0),
    # -- matrices and vectors --
    ("matrix", r"\boxed{\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}}",
     r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", 1.0),
    ("matrix", r"\boxed{\begin{pmatrix} 1 & 2 \\ 4 & 3 \end{pmatrix}}",
     r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", 0.0),
    ("matrix", r"\boxed{\begin{pmatrix} 0.5 \\ -1 \end{pmatrix}}", r"\begin{pmatrix} \frac{1}{2} \\ -1 \end{pmatrix}", 1.0),
    ("matrix", r"\boxed{\begin{pmatrix} 2 \\ -1 \end{pmatrix}}", r"\begin{pmatrix} \frac{1}{2} \\ -1 \end{pmatrix}", 0.0),
    # -- equations and inequalities --
    ("equation", r"\boxed{-2x+3y-6=0}", "2x-3y+6=0", 1.0),
    ("equation", r"\boxed{2x-3y-6=0}", "2x-3y+6=0", 0.0),
    ("equation", r"\boxed{y = 2x + 1}", "y=1+2x", 1.0),
    ("equation", r"\boxed{y = 2x - 1}", "y=1+2x", 0.0),
    ("equation", r"\boxed{x \geq 2}", r"x\ge 2", 1.0),
    ("equation", r"\boxed{x > 2}", r"x\ge 2", 0.0),
    ("equation", r"\boxed{x=2}", "2", 1.0),
    # -- identities --
    ("identity", r"\boxed{\cos^2(t)}", r"1-\sin^2(t)", 1.0),
    ("identity", r"\boxed{\sin^2(t)}", r"1-\sin^2(t)", 0.0),
    ("identity", r"\boxed{2\sin x\cos x}", r"\sin 2x", 1.0),
    ("identity", r"\boxed{x^2-1}", r"(x-1)(x+1)", 1.0),
    ("identity", r"\boxed{x^2+1}", r"(x-1)(x+1)", 0.0),
    # -- text answers --
    ("text", "The answer is B.", r"\text{B}", 1.0),
    ("text", "The answer is C.", r"\text{B}", 0.0),
    ("text", r"\boxed{\text{(B)}}", "B", 1.0),
    ("text", r"\boxed{even}", r"\text{even}", 1.0),
    ("text", r"\boxed{\text{odd}}", r"\text{even}", 0.0),
    ("text", "Monday", "Monday", 1.0),
    ("text", "The meeting is on Monday.\nThe answer is Monday.", "Monday", 1.0),
    ("text", "The answer is Tuesday.", "Monday", 0.0),
    ("text", r"\boxed{\text{dynamo}}", "Monday", 0.0),  # same letters: a product of symbols would match
    ("text", "The answer is yes", r"\text{Yes}", 1.0),
    ("text", "The answer is no", r"\text{Yes}", 0.0),
    ("text", "C", r"\text{(C)}", 1.0),
    ("text", "The answer is (C).", r"\text{(C)}", 1.0),
    ("text", "(B)", r"\text{(C)}", 0.0),
    # -- thousands separators in LaTeX --
    ("thousands", r"\boxed{2024000}", r"2,\! 024,\! 000", 1.0),
    ("thousands", r"\boxed{2,024,000}", r"2,\!024,\!000", 1.0),
    ("thousands", r"\boxed{2{,}024{,}000}", "2024000", 1.0),
    ("thousands", r"\boxed{2024}", r"2,\! 024,\! 000", 0.0),
    ("thousands", r"\boxed{\$1,\!250}", "1250", 1.0),
    # -- what rlft keeps: markers, plain thousands, hedges, unverifiable golds --
    ("rlft markers", "6 * 7 = 42 and 42 - 2 = 40\n#### 40", "40", 1.0),
    ("rlft markers", "6 * 7 = 42 and 42 - 2 = 40\n#### 40", "42", 0.0),
    ("rlft markers", "<think>6 * 7 = 42</think><answer>42</answer>", "42", 1.0),
    ("rlft markers", "The answer is 31 apples because 30 + 1 = 31.", "31", 1.0),
    ("rlft markers", "The answer is 1,000.", "1000", 1.0),
    ("rlft markers", "The answer is 1,000.", "100", 0.0),
    ("rlft markers", "She has 15 apples and eats 3, so 12 are left.", "12", 1.0),
    ("rlft markers", "The answer is 50%", "0.5", 1.0),
    ("rlft markers", r"\boxed{3} or \boxed{4}", "4", 0.0),
    ("rlft markers", r"\boxed{5}", r"\frac{", None),
    ("rlft markers", r"\boxed{5}", "", None),
]
