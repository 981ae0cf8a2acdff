"""Where the tests find the repository and their data, wherever a test module sits."""
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
REFERENCE = TESTS / "reference"
DATA = TESTS / "data"
