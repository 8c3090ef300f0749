"""``python -m lmcourse.drills [FILES]``: check the question bank against its schema and count it."""
from lmcourse.drills.bank import main

raise SystemExit(main())
