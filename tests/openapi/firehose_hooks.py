"""Schemathesis hooks for tests/openapi_conformance.rs.

`cargo lambda watch`, the local Lambda emulator, answers 500 by itself to a JSON
request whose body is not UTF-8: it fails to build the Lambda event, so the function
never sees the request. On AWS the Function URL passes such a body to the function,
which answers 400 invalid_json (tests/events.rs checks that in process). These cases
would test the emulator, not the function, so they are not sent.
"""

import schemathesis


@schemathesis.hook
def filter_body(ctx, body):
    if isinstance(body, (bytes, bytearray)):
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True
