"""Live experiments: a challenger model served to a share of users beside the champion.

``assignment`` picks a user's arm, ``record`` is what an experiment is, ``statistics`` the
per-arm counts and the always-valid comparison, ``gate`` the decision, ``store`` the Redis
side and ``results`` the outcome kept beside the versions. What a scorer does with an
experiment is the scorer's (:mod:`streams.scorer.experiment_routing`).
"""
