"""Live experiments: a challenger model served to a share of users beside the champion.

``assignment`` picks a user's arm, ``record`` is what an experiment is, ``statistics`` the
per-arm counts and the always-valid comparison, ``gate`` the decision, ``store`` the Redis
side and ``routing`` what a scorer does with it.
"""
