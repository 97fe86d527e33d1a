"""bimmaild: the mail-account daemon of bimmail."""

__version__ = "0.1.0"
