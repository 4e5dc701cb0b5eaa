"""The reviewer's and maintainer's commands: ``orgauthz policy ...``, ``orgauthz explain``, ``make generate``."""
