"""OAuth2 sign-in for accounts whose providers refuse passwords (Gmail, Microsoft 365, Outlook.com).

``issuers`` knows the providers' endpoints, ``flow`` the protocol (sans-IO), ``http`` talks to
token endpoints, ``clients`` keeps the client ids users register, ``signin`` runs the browser
and device sign-ins, ``tokens`` keeps access tokens fresh.
"""
