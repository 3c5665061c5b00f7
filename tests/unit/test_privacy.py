import logging

from shared.privacy import SecretRedactingFilter, redact, redact_secrets, register_secret


def test_redact_secrets_takes_known_secrets_sendgrid_keys_and_bearer_tokens():
    key = "SG." + "abcdefghijklmnopqrstuv" + "." + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq"  # not committed whole
    text = f"known s3cret-value-1, shaped {key}, header 'authorization: bearer eyJ.a-b_c/d+e==' end"
    assert redact_secrets(text, "s3cret-value-1", "short") == (
        "known ***, shaped ***, header 'authorization: bearer ***' end"
    )
    assert redact_secrets("short stays", "short") == "short stays"  # too short to tell from words


def test_a_secret_containing_another_is_replaced_whole():
    assert redact_secrets("abcdefgh-ijklmnop", "abcdefgh", "abcdefgh-ijklmnop") == "***"


def test_redact_and_the_log_filter_cover_registered_and_shaped_secrets():
    register_secret("registered-secret-42")
    assert redact("x registered-secret-42 a@example.com") == "x *** <email>"
    args = ("registered-secret-42", "Bearer tok")
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "got %s and %s", args, None)
    SecretRedactingFilter().filter(record)
    assert record.getMessage() == "got *** and Bearer ***"
