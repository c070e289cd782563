import unittest

from slugkit import slugify


class SlugifyTest(unittest.TestCase):
    def test_lowercases_and_joins_words(self) -> None:
        self.assertEqual(slugify("Hello, World!"), "hello-world")

    def test_strips_accents(self) -> None:
        self.assertEqual(slugify("Crème brûlée à Paris"), "creme-brulee-a-paris")

    def test_custom_separator(self) -> None:
        self.assertEqual(slugify("a b  c", separator="_"), "a_b_c")

    def test_max_length_cuts_at_a_separator(self) -> None:
        self.assertEqual(slugify("the quick brown fox", max_length=12), "the-quick")

    def test_empty_and_symbols_only(self) -> None:
        self.assertEqual(slugify(""), "")
        self.assertEqual(slugify("!!! ???"), "")


if __name__ == "__main__":
    unittest.main()
