"""Credential detectors: well-known token formats, assignments to secret-named keys, bearer
tokens, private keys, JWTs, SQL, and high-entropy strings in secret context.

The token formats follow the providers' documented prefixes (the same facts gitleaks' rules
encode); each rule has literal keywords so the Aho-Corasick prefilter skips it on text that
cannot match.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import unquote_plus

from signoff.masking.keys import classify_key, key_words
from signoff.masking.scanner import Detector
from signoff.masking.validators import shannon_entropy

_B = r"(?<![A-Za-z0-9_])"  # left token boundary
_E = r"(?![A-Za-z0-9_])"  # right token boundary

# id, pattern, keywords (lower-case literals; one must occur), confidence
_TOKEN_RULES: list[tuple[str, str, tuple[str, ...], float]] = [
    ("aws_access_key", _B + r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}" + _E, ("akia", "asia", "abia", "acca", "a3t"), 0.95),
    ("aws_bedrock_key", _B + r"ABSK[A-Za-z0-9+/]{109,269}={0,2}", ("absk",), 0.95),
    ("gcp_api_key", _B + r"AIza[\w-]{35}" + r"(?![\w-])", ("aiza",), 0.95),
    ("github_token", _B + r"gh[pousr]_[A-Za-z0-9]{36,255}" + _E, ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), 0.99),
    ("github_fine_grained_pat", _B + r"github_pat_\w{82}" + _E, ("github_pat_",), 0.99),
    ("gitlab_token", _B + r"(?:glpat|gldt|glptt|glrt|glrtr|glcbt|glffct|glft|glimt|glagent|gloas|glsoat|glwt|glst)-[\w-]{20,64}(?![\w-])", ("glpat-", "gldt-", "glptt-", "glrt-", "glcbt-", "glffct-", "glft-", "glimt-", "glagent-", "gloas-", "glsoat-", "glwt-", "glst-"), 0.99),
    ("gitlab_runner_registration", _B + r"GR1348941[\w-]{20}" + r"(?![\w-])", ("gr1348941",), 0.99),
    ("gitlab_session", r"_gitlab_session=([0-9a-z]{32})", ("_gitlab_session",), 0.95),
    ("slack_token", _B + r"xox[abposre]-(?:\d+-)?[0-9A-Za-z-]{10,250}", ("xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-", "xoxe-"), 0.99),
    ("slack_config_token", _B + r"xoxe(?:\.xox[bp])?-\d-[A-Za-z0-9]{146,166}", ("xoxe",), 0.99),
    ("slack_app_token", _B + r"xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+" + _E, ("xapp-",), 0.99),
    ("slack_webhook", r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{43,56}", ("hooks.slack.com",), 0.99),
    ("teams_webhook", r"https://[a-z0-9]+\.webhook\.office\.com/webhookb2/[a-z0-9-]+@[a-z0-9-]+/IncomingWebhook/[a-z0-9]+/[a-z0-9-]+", ("webhook.office.com",), 0.99),
    ("stripe_key", _B + r"(?:sk|rk)_(?:test|live|prod)_[A-Za-z0-9]{10,99}" + _E, ("sk_test_", "sk_live_", "sk_prod_", "rk_test_", "rk_live_", "rk_prod_"), 0.99),
    ("stripe_webhook_secret", _B + r"whsec_[A-Za-z0-9]{24,64}" + _E, ("whsec_",), 0.95),
    ("twilio_api_key", _B + r"SK[0-9a-fA-F]{32}" + _E, ("sk",), 0.8),
    ("sendgrid_api_key", _B + r"SG\.[\w-]{22}\.[\w-]{43}" + r"(?![\w-])", ("sg.",), 0.99),
    ("openai_api_key", _B + r"sk-(?:(?:proj|svcacct|admin)-[\w-]{20,200}T3BlbkFJ[\w-]{20,200}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})" + r"(?![\w-])", ("t3blbkfj",), 0.99),
    ("openai_project_key", _B + r"sk-(?:proj|svcacct|admin)-[\w-]{40,250}" + r"(?![\w-])", ("sk-proj-", "sk-svcacct-", "sk-admin-"), 0.95),
    ("anthropic_api_key", _B + r"sk-ant-(?:api03|admin01|oat01|sid01)-[\w-]{80,120}" + r"(?![\w-])", ("sk-ant-",), 0.99),
    ("huggingface_token", _B + r"(?:hf_|api_org_)[A-Za-z]{34}" + _E, ("hf_", "api_org_"), 0.95),
    ("npm_token", _B + r"npm_[A-Za-z0-9]{36}" + _E, ("npm_",), 0.99),
    ("pypi_token", r"pypi-AgEIcHlwaS5vcmc[\w-]{50,1000}", ("pypi-ageichlwas5vcmc",), 0.99),
    ("shopify_token", _B + r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}" + _E, ("shpat_", "shpca_", "shppa_", "shpss_"), 0.99),
    ("digitalocean_token", _B + r"do[opr]_v1_[a-f0-9]{64}" + _E, ("dop_v1_", "doo_v1_", "dor_v1_"), 0.99),
    ("doppler_token", _B + r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9_]{32,64}", ("dp.pt.", "dp.st.", "dp.sa.", "dp.ct.", "dp.scim.", "dp.audit."), 0.99),
    ("vault_token", _B + r"(?:hvs|hvb|hvr)\.[\w-]{24,300}" + r"(?![\w-])", ("hvs.", "hvb.", "hvr."), 0.9),
    ("databricks_token", _B + r"dapi[a-f0-9]{32}(?:-\d)?" + _E, ("dapi",), 0.95),
    ("dynatrace_token", r"dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}", ("dt0c01.",), 0.99),
    ("grafana_token", _B + r"(?:glc_[A-Za-z0-9+/]{32,400}={0,2}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|eyJrIjoi[A-Za-z0-9]{70,400}={0,2})", ("glc_", "glsa_", "eyjrijoi"), 0.95),
    ("linear_api_key", _B + r"lin_api_[A-Za-z0-9]{40}" + _E, ("lin_api_",), 0.99),
    ("mailchimp_api_key", _B + r"[0-9a-f]{32}-us\d{1,2}" + _E, ("-us",), 0.9),
    ("mailgun_key", _B + r"(?:key|pubkey)-[0-9a-f]{32}" + _E, ("key-",), 0.85),
    ("notion_token", _B + r"(?:ntn_\d{11}[A-Za-z0-9]{32}[A-Za-z0-9]{3}|secret_[A-Za-z0-9]{43})" + _E, ("ntn_", "secret_"), 0.9),
    ("postman_api_key", _B + r"PMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}" + _E, ("pmak-",), 0.99),
    ("pulumi_token", _B + r"pul-[a-f0-9]{40}" + _E, ("pul-",), 0.99),
    ("sentry_token", _B + r"(?:sntrys_eyJpYXQiO[A-Za-z0-9+/=_]{50,400}|sntryu_[a-f0-9]{64})", ("sntrys_", "sntryu_"), 0.99),
    ("square_token", _B + r"(?:EAAA[\w-]{60}|sq0(?:atp|csp)-[\w-]{22,43})" + r"(?![\w-])", ("eaaa", "sq0atp-", "sq0csp-"), 0.95),
    ("telegram_bot_token", r"(?<!\d)\d{5,16}:A[\w-]{34}(?![\w-])", (":a",), 0.95),
    ("age_secret_key", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}", ("age-secret-key-1",), 0.99),
    ("onepassword_token", _B + r"ops_eyJ[A-Za-z0-9+/]{250,}={0,3}", ("ops_eyj",), 0.99),
    ("onepassword_secret_key", _B + r"A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}" + _E, ("a3-",), 0.95),
    ("alibaba_access_key", _B + r"LTAI[A-Za-z0-9]{20}" + _E, ("ltai",), 0.95),
    ("atlassian_token", _B + r"ATATT3[A-Za-z0-9_\-=]{186}", ("atatt3",), 0.99),
    ("clojars_token", r"(?i)" + _B + r"CLOJARS_[a-z0-9]{60}" + _E, ("clojars_",), 0.99),
    ("cloudflare_origin_ca_key", _B + r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}" + _E, ("v1.0-",), 0.99),
    ("duffel_token", _B + r"duffel_(?:test|live)_[A-Za-z0-9_\-=]{43}", ("duffel_",), 0.99),
    ("easypost_token", _B + r"EZ[AT]K[A-Za-z0-9]{54}" + _E, ("ezak", "eztk"), 0.99),
    ("facebook_token", _B + r"EAA[MC][A-Za-z0-9]{100,}" + _E, ("eaam", "eaac"), 0.95),
    ("flutterwave_key", _B + r"FLW(?:SECK|PUBK)_TEST-[a-h0-9]{32}-X" + _E, ("flwseck_test", "flwpubk_test"), 0.99),
    ("frameio_token", _B + r"fio-u-[\w=-]{64}", ("fio-u-",), 0.99),
    ("terraform_cloud_token", r"(?i)" + _B + r"[a-z0-9]{14}\.atlasv1\.[a-z0-9\-_=]{60,70}", ("atlasv1",), 0.99),
    ("infracost_token", _B + r"ico-[A-Za-z0-9]{32}" + _E, ("ico-",), 0.95),
    ("intra42_secret", _B + r"s-s4t2(?:ud|af)-[a-f0-9]{64}" + _E, ("s-s4t2",), 0.99),
    ("newrelic_key", _B + r"(?:NRAK-[A-Z0-9]{27}|NRJS-[a-f0-9]{19}|NRII-[\w-]{32}|NRAA-[a-f0-9]{27})" + r"(?![\w-])", ("nrak-", "nrjs-", "nrii-", "nraa-"), 0.99),
    ("octopus_deploy_key", _B + r"API-[A-Z0-9]{26}" + _E, ("api-",), 0.9),
    ("planetscale_token", _B + r"pscale_(?:tkn|oauth|pw)_[\w=.-]{32,64}", ("pscale_",), 0.99),
    ("prefect_token", _B + r"pnu_[A-Za-z0-9]{36}" + _E, ("pnu_",), 0.99),
    ("readme_token", _B + r"rdme_[a-z0-9]{70}" + _E, ("rdme_",), 0.99),
    ("rubygems_token", _B + r"rubygems_[a-f0-9]{48}" + _E, ("rubygems_",), 0.99),
    ("scalingo_token", _B + r"tk-us-[\w-]{48}", ("tk-us-",), 0.99),
    ("settlemint_token", _B + r"sm_(?:pat|aat|sat)_[a-zA-Z0-9]{16}" + _E, ("sm_pat_", "sm_aat_", "sm_sat_"), 0.99),
    ("shippo_token", _B + r"shippo_(?:live|test)_[a-fA-F0-9]{40}" + _E, ("shippo_",), 0.99),
    ("typeform_token", _B + r"tfp_[a-z0-9\-_.=]{59}", ("tfp_",), 0.99),
    ("yandex_token", _B + r"(?:t1\.[A-Z0-9a-z_-]+=*\.[A-Z0-9a-z_-]{86}=*|AQVN[A-Za-z0-9_\-]{35,38}|YC[a-zA-Z0-9_\-]{38})" + r"(?![\w-])", ("t1.", "aqvn", "yc"), 0.8),
    ("flyio_token", _B + r"(?:fo1_[\w-]{43}|fm1[ar]_[A-Za-z0-9+/]{100,}={0,3}|fm2_[A-Za-z0-9+/]{100,}={0,3})", ("fo1_", "fm1a_", "fm1r_", "fm2_"), 0.99),
    ("harness_token", r"(?:pat|sat)\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}", ("pat.", "sat."), 0.99),
    ("artifactory_token", _B + r"(?:AKCp[A-Za-z0-9]{69}|cmVmdGtu[A-Za-z0-9]{56})" + _E, ("akcp", "cmvmdgtu"), 0.95),
    ("clickhouse_secret", _B + r"4b1d[A-Za-z0-9]{38}" + _E, ("4b1d",), 0.95),
    ("defined_networking_key", _B + r"dnkey-[a-z0-9=_\-]{26}-[a-z0-9=_\-]{52}", ("dnkey-",), 0.99),
    ("gocardless_token", _B + r"live_[a-zA-Z0-9\-_=]{40}", ("live_",), 0.9),
    ("mapbox_token", _B + r"(?:pk|sk)\.eyJ[A-Za-z0-9_-]{50,}\.[A-Za-z0-9_-]{22}", ("pk.eyj", "sk.eyj"), 0.99),
    ("azure_ad_client_secret", r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])", ("q~",), 0.95),
    ("azure_storage_key", r"(?i)AccountKey=([A-Za-z0-9+/]{86,88}={0,2})", ("accountkey",), 0.99),
    ("azure_sas_token", r"(?i)[?&]sig=([A-Za-z0-9%+/]{40,120}(?:%3D|=){0,2})", ("sig=",), 0.9),
    ("heroku_api_key_v2", _B + r"HRKU-AA[0-9a-zA-Z_-]{58}", ("hrku-aa",), 0.99),
    ("authress_key", r"(?i)" + _B + r"(?:sc|ext|scauth|authress)_[a-z0-9]{5,30}\.[a-z0-9]{4,6}\.acc[_-][a-z0-9-]{10,32}\.[a-z0-9+/_=-]{30,120}", ("acc_", "acc-"), 0.99),
    ("adobe_client_secret", _B + r"p8e-[A-Za-z0-9]{32}" + _E, ("p8e-",), 0.99),
    ("beamer_token", _B + r"b_[a-z0-9=_\-]{44}" + r"(?![\w=-])", ("b_",), 0.6),
    ("bitbucket_app_password", _B + r"ATBB[A-Za-z0-9_=.-]{32}" + r"(?![\w=.-])", ("atbb",), 0.95),
    ("contentful_token", _B + r"CFPAT-[\w-]{43}", ("cfpat-",), 0.99),
    ("openshift_token", _B + r"sha256~[\w-]{43}" + r"(?![\w-])", ("sha256~",), 0.99),
    ("private_packagist_token", _B + r"packagist_[ou][ru]t_[a-f0-9]{68}", ("packagist_",), 0.99),
    ("sumologic_access_id", _B + r"su[A-Za-z0-9]{12}" + _E, ("sumo",), 0.5),
    ("cohere_api_key", r"(?i)cohere.{0,40}?([a-zA-Z0-9]{40})" + _E, ("cohere",), 0.8),
    ("facebook_app_token", r"(?<![\w|])\d{15,16}(?:\||%7[Cc])[0-9A-Za-z_-]{27,40}" + r"(?![\w-])", ("|", "%7c"), 0.9),
    ("sourcegraph_token", _B + r"sgp_(?:[a-fA-F0-9]{16}_|local_)?[a-fA-F0-9]{40}" + _E, ("sgp_",), 0.99),
    ("sidekiq_secret", r"(?i)BUNDLE_(?:ENTERPRISE|GEMS)__CONTRIBSYS__COM[\"']?\s*[:=]\s*[\"']?([a-f0-9]{8}:[a-f0-9]{8})", ("contribsys__com",), 0.99),
    ("jwt_base64", _B + r"ZXlK[A-Za-z0-9+/]{40,}={0,2}", ("zxlk",), 0.9),
    ("kubernetes_secret_data_block", r"(?m)^\s*[\w.-]+:\s*[|>][-+]?[ \t]*\n((?:[ \t]+[A-Za-z0-9+/=]{4,}\n?)+)", ("kind: secret", "kind: \"secret\"", "kind: 'secret'", "dockercfg", "dockerconfigjson"), 0.8),
    ("kubernetes_secret_data", r"(?m)^\s*[\w.-]+:\s*[\"']?([A-Za-z0-9+/]{16,}={0,2})[\"']?\s*$", ("kind: secret", "kind: \"secret\"", "kind: 'secret'"), 0.8),
    ("privateai_key", _B + r"pai_[A-Za-z0-9]{32,}" + _E, ("pai_",), 0.9),
    ("perplexity_key", _B + r"pplx-[A-Za-z0-9]{48}" + _E, ("pplx-",), 0.99),
    ("groq_key", _B + r"gsk_[A-Za-z0-9]{52}" + _E, ("gsk_",), 0.99),
    ("xai_key", _B + r"xai-[A-Za-z0-9]{80}" + _E, ("xai-",), 0.99),
    ("replicate_token", _B + r"r8_[A-Za-z0-9]{37}" + _E, ("r8_",), 0.99),
    ("langsmith_key", _B + r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}" + _E, ("lsv2_",), 0.99),
]

PEM_RE = re.compile(
    r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----[\s\S]{0,20000}?"
    r"(?:-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----|\Z)"
)
PEM_ESCAPED_RE = re.compile(  # a PEM key inside a JSON string, with literal \n
    r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY-----(?:\\n|[A-Za-z0-9+/=\\\s:,-]){0,20000}?"
    r"(?:-----END[ A-Z0-9_-]{0,100}PRIVATE KEY-----|\Z)"
)
JWT_RE = re.compile(
    r"(?<![\w-])ey[A-Za-z0-9_-]{10,}={0,2}\.ey[A-Za-z0-9_-]{10,}={0,2}\.?[A-Za-z0-9_-]*={0,2}(?![\w-])"
)
BEARER_RE = re.compile(
    r"(?i)\b(?:bearer|token|basic|digest|apikey|api-key|sso-key)\s+([A-Za-z0-9._~+/:-]{12,4000}=*)"
)
BASIC_HEADER_RE = re.compile(r"(?i)authorization\s*[:=]\s*[\"']?(?:basic|bearer|token)?\s*([A-Za-z0-9._~+/:-]{8,4000}=*)")
CURL_USER_RE = re.compile(r"(?:^|\s)(?:-u|--user)[\s=]+(\"[^\"\n]*:[^\"\n]*\"|'[^'\n]*:[^'\n]*'|[^\s]*:[^\s]*)")
SQL_IDENTIFIED_RE = re.compile(r"(?i)\b(?:identified\s+by|password\s*(?:=\s*)?)\s*(?:password\s*)?'((?:[^'\\]|\\.|'')*)'")
NUGET_RE = re.compile(r"(?i)<add\s+key=\"(?:clear ?text ?)?password\"\s+value=\"([^\"]{1,256})\"")

# --- name = value -------------------------------------------------------------------------------
ASSIGN_RE = re.compile(
    r"""(?P<key>(?<![\w.$@-])[\w$@][\w.\-]{0,100}?)["']?[ \t]{0,8}(?P<op>::=|:=|=>|==|=|:)[ \t]{0,8}"""
    r"""(?:"(?P<dq>(?:[^"\\\n]|\\.){0,2000})"|'(?P<sq>(?:[^'\\\n]|\\.){0,2000})'|`(?P<bq>[^`\n]{0,2000})`"""
    r"""|(?P<raw>[^\s"'`,;&<>()\[\]{}]{1,2000}))"""
)
_SCHEMES = frozenset({"bearer", "basic", "token", "digest", "negotiate", "apikey", "sso-key", "key"})
_PLACEHOLDER = re.compile(
    r"""^(?:\$\{[^}]*\}|\$\(?[A-Za-z_][\w.]*\)?|\{\{[^}]*\}\}|<[^>]*>|%\([^)]*\)s|%s|\*+|x{3,}|X{3,}|"""
    r"""null|none|nil|true|false|undefined|\[[A-Z_]+\]|<[A-Z_]+_[0-9a-f]{6}>|\.{3})$""",
    re.I,
)


def _value_span(m: re.Match[str]) -> tuple[int, int, str] | None:
    for g in ("dq", "sq", "bq", "raw"):
        if m.group(g) is not None:
            return m.start(g), m.end(g), g
    return None


def find_assignments(text: str) -> Iterator[tuple[int, int, float, str]]:
    """``password=…``, ``"apiKey": "…"``, ``DB_PASSWORD: …``, ``ssn=…`` in any text.

    The name is judged by :func:`classify_key` (case- and separator-insensitive), the value is
    what follows the operator: a quoted string, or an unquoted run up to a separator. After a
    ``:`` an unquoted credential runs to the end of the line (YAML, HTTP headers). Placeholders
    (``${VAR}``, ``<token>``, ``***``) are left alone.
    """
    for m in ASSIGN_RE.finditer(text):
        key = m.group("key")
        tail = key.rsplit(".", 1)[-1] if "." in key else key
        entity = classify_key(tail)
        if entity is None or entity in ("ADDRESS",):
            continue
        vs = _value_span(m)
        if vs is None:
            continue
        start, end, kind = vs
        if end <= start:
            continue
        value = text[start:end]
        if _PLACEHOLDER.match(value.strip()):
            continue
        if kind == "raw":
            if value.lower() in _SCHEMES:
                # "Authorization: Bearer abc" -> take the token too.
                rest = re.match(r"[ \t]+([^\s\"',;]+)", text[end:])
                if rest:
                    end = end + rest.end()
            elif m.group("op") == ":" and entity == "SECRET":
                nl = text.find("\n", end)
                line_end = len(text) if nl < 0 else nl
                tail_text = text[end:line_end]
                cut = re.search(r"[\"',;}\]]|\s{2,}", tail_text)
                end = end + (cut.start() if cut else len(tail_text.rstrip()))
        if m.group("op") == "==" and entity != "SECRET":
            continue
        conf = 0.85 if entity == "SECRET" else 0.75
        yield (start, end, conf, entity)


# --- command lines ----------------------------------------------------------------------------
CLI_FLAG_RE = re.compile(
    r"""(?<![\w-])(?P<dash>--?)(?P<name>[A-Za-z][\w.-]{0,60}?)(?P<op>=|[ \t]+)"""
    r"""(?:"(?P<dq>(?:[^"\\\n]|\\.){1,2000})"|'(?P<sq>[^'\n]{1,2000})'|(?P<raw>[^\s"'`|;&<>]{1,2000}))"""
)
# Tools whose short ``-p`` is the password, glued to it (``mysql -pS3cret``) or, for sshpass
# and redis-cli's ``-a``, the next word.
GLUED_P_RE = re.compile(r"(?<![\w-])-p(?P<value>[^\s\"'`|;&<>-][^\s\"'`|;&<>]{0,500})")
NEXT_WORD_RE = re.compile(r"(?<![\w-])(?:sshpass\s+-p|redis-cli\b[^\n|;&]{0,200}?\s-a)\s+(?P<value>\"[^\"\n]+\"|'[^'\n]+'|[^\s\"'|;&<>]+)")
_GLUED_P_TOOLS = ("mysql", "mariadb", "mysqldump", "mysqladmin", "mysqlimport", "mysqlsh", "mysqlcheck", "mysqlpump")
# ``--password-file /run/secrets/db``: the flag names where the secret is, not the secret.
_FLAG_NOT_VALUE = frozenset({"file", "path", "dir", "env", "stdin", "length", "policy", "reset", "prompt", "expiry", "ttl", "rotation", "fd", "cmd", "command", "helper", "store"})


def find_cli_flags(text: str) -> Iterator[tuple[int, int, float, str]]:
    """``--password=…``, ``--api-key …``, ``--client-secret "…"``, ``mysql -p…``,
    ``sshpass -p …``, ``redis-cli -a …``: the flag name is judged like a key name."""
    lower = text.lower()
    for m in CLI_FLAG_RE.finditer(text):
        name = m.group("name")
        entity = classify_key(name)
        if m.group("dash") == "-" and len(name) > 1 and m.group("op") != "=" and entity != "SECRET":
            continue  # "-abc value": bundled short options (a Go/Java/openssl "-password x" is not)
        if entity is None or entity == "ADDRESS" or (key_words(name)[-1:] and key_words(name)[-1] in _FLAG_NOT_VALUE):
            continue
        for g in ("dq", "sq", "raw"):
            if m.group(g) is not None:
                start, end = m.start(g), m.end(g)
                break
        value = text[start:end]
        if m.group("op") != "=" and value.startswith("-"):
            continue  # the next flag, not a value
        if _PLACEHOLDER.match(value.strip()):
            continue
        yield (start, end, 0.9 if entity == "SECRET" else 0.8, entity)
    if any(t in lower for t in _GLUED_P_TOOLS):
        for m in GLUED_P_RE.finditer(text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            if any(t in lower[line_start : m.start()] for t in _GLUED_P_TOOLS):
                value = m.group("value")
                if not _PLACEHOLDER.match(value):
                    yield (m.start("value"), m.end("value"), 0.9, "SECRET")
    if "sshpass" in lower or "redis-cli" in lower:
        for m in NEXT_WORD_RE.finditer(text):
            s, e = m.span("value")
            if text[s] in "\"'":
                s, e = s + 1, e - 1
            yield (s, e, 0.9, "SECRET")


# --- URL query strings and form bodies ----------------------------------------------------------
QUERY_PARAM_RE = re.compile(r"(?:(?<=[?&;#])|(?<=&amp;)|^)(?P<name>[\w.\-\[\]%]{1,100})=(?P<value>[^&#\s\"'<>]{1,4000})")
# Names that are credentials in a query string although not elsewhere: OAuth's ``code``, a bare
# ``key`` (Google's ``?key=``), ``X-Amz-Credential``.
_QUERY_SECRET_NAMES = frozenset({"code", "key", "k", "authcode", "xamzcredential", "xgoogcredential"})


def find_query_params(text: str) -> Iterator[tuple[int, int, float, str]]:
    """``?access_token=…&…``, ``&client_secret=…``, ``?code=…`` (in URLs, form bodies and
    fragments), names URL-encoded or not."""
    for m in QUERY_PARAM_RE.finditer(text):
        if m.start() == 0 and "&" not in text:
            continue  # a lone "a=b" is an assignment, judged there
        name = unquote_plus(m.group("name"))
        compact = "".join(key_words(name))
        entity = classify_key(name) or ("SECRET" if compact in _QUERY_SECRET_NAMES else None)
        if entity is None or entity == "ADDRESS":
            continue
        value = m.group("value")
        if _PLACEHOLDER.match(unquote_plus(value).strip()):
            continue
        yield (m.start("value"), m.end("value"), 0.9 if entity == "SECRET" else 0.8, entity)


# --- markup ------------------------------------------------------------------------------------
XML_ELEMENT_RE = re.compile(
    r"<(?P<tag>(?:[\w.-]+:)?(?P<name>[A-Za-z_][\w.-]{0,80}))(?P<attrs>\s[^<>]{0,500})?>"
    r"(?:<!\[CDATA\[(?P<cdata>[\s\S]{1,4000}?)\]\]>|(?P<text>[^<]{1,4000}))</(?P=tag)\s*>"
)
XML_NAME_ATTR_RE = re.compile(r"""(?i)\b(?:name|key|id|param|property)\s*=\s*["']([^"'<>]{1,100})["']""")
XML_NAME_VALUE_RE = re.compile(
    r"""(?i)<[\w:.-]+\s[^<>]{0,300}?\b(?:name|key|id|param|property)\s*=\s*["'](?P<name>[^"'<>]{1,100})["']"""
    r"""[^<>]{0,300}?\bvalue\s*=\s*(?:"(?P<dq>[^"<>]{1,2000})"|'(?P<sq>[^'<>]{1,2000})')"""
)


XML_OPEN_RE = re.compile(r"<(?P<tag>(?:[\w.-]+:)?(?P<name>[A-Za-z_][\w.-]{0,80}))(?:\s[^<>]{0,500})?>")
XML_TEXT_NODE_RE = re.compile(r">(?P<text>[^<>]*[^<>\s][^<>]*)<")


def find_markup(text: str) -> Iterator[tuple[int, int, float, str]]:
    """``<password>…</password>``, ``<ns:ApiKey><![CDATA[…]]></ns:ApiKey>``,
    ``<property name="db.password" value="…"/>``, ``<add key="ClientSecret" value="…"/>``."""
    for m in XML_ELEMENT_RE.finditer(text):
        name = m.group("name")
        entity = classify_key(name.rsplit(".", 1)[-1])
        if entity is None and m.group("attrs"):
            # <entry key="password">…</entry>, <param name="apiKey">…</param>
            named = XML_NAME_ATTR_RE.search(m.group("attrs"))
            if named is not None:
                entity = classify_key(named.group(1).rsplit(".", 1)[-1])
        if entity is None or entity == "ADDRESS":
            continue
        g = "cdata" if m.group("cdata") is not None else "text"
        value = m.group(g)
        if not value.strip() or _PLACEHOLDER.match(value.strip()):
            continue
        lead = len(value) - len(value.lstrip())
        yield (m.start(g) + lead, m.start(g) + len(value.rstrip()), 0.9 if entity == "SECRET" else 0.8, entity)
    if text.count("<") >= 4:
        # <credentials><value>…</value></credentials>: every text node inside a credential
        # element, however deep.
        for m in XML_OPEN_RE.finditer(text):
            if classify_key(m.group("name").rsplit(".", 1)[-1]) != "SECRET":
                continue
            close = text.find(f"</{m.group('tag')}", m.end(), m.end() + 8000)
            if close < 0 or "<" not in text[m.end() : close]:
                continue  # no close tag near, or a flat element (handled above)
            base = m.end()
            for node in XML_TEXT_NODE_RE.finditer(text, base - 1, close + 1):
                value = node.group("text")
                lead = len(value) - len(value.lstrip())
                start, end = node.start("text") + lead, node.end("text") - (len(value) - len(value.rstrip()))
                if end > start and not _PLACEHOLDER.match(text[start:end]):
                    yield (start, end, 0.85, "SECRET")
    for m in XML_NAME_VALUE_RE.finditer(text):
        entity = classify_key(m.group("name").rsplit(".", 1)[-1])
        if entity is None or entity == "ADDRESS":
            continue
        g = "dq" if m.group("dq") is not None else "sq"
        if not _PLACEHOLDER.match(m.group(g).strip()):
            yield (m.start(g), m.end(g), 0.9 if entity == "SECRET" else 0.8, entity)


# --- high-entropy strings in secret context ---------------------------------------------------
STRONG_CONTEXT_WORDS: tuple[str, ...] = (
    "token", "secret", "password", "passwd", "pwd", "apikey", "api_key", "api-key", "api key",
    "auth", "credential", "bearer", "private", "access_key", "accesskey", "client_id",
    "clientid", "client-id", "key", "login", "signature", "session", "cookie", "license",
)
# Providers whose keys have no distinctive prefix: context only in assignment position
# (``SONAR_LOGIN = "…"``, ``sourcegraph: …``).
PROVIDER_CONTEXT_WORDS: tuple[str, ...] = (
    "adafruit", "adobe", "airtable", "algolia", "asana", "beamer", "bitbucket", "bittrex",
    "codecov", "coinbase", "confluent", "datadog", "discord", "dropbox", "droneci", "etsy",
    "fastly", "finicity", "finnhub", "flickr", "freshbooks", "gitter", "hubspot", "heroku",
    "intercom", "jfrog", "artifactory", "kraken", "kucoin", "launchdarkly", "linkedin", "lob",
    "looker", "mattermost", "messagebird", "netlify", "nytimes", "okta", "plaid", "rapidapi",
    "sendbird", "sendinblue", "sentry", "snyk", "sonar", "squarespace", "sumo", "travis",
    "trello", "twitch", "twitter", "typeform", "zendesk", "contentful", "cisco", "meraki",
    "freemius", "mailchimp", "mailgun", "twilio", "azure", "aws", "gcp", "firebase", "bitly",
    "dynatrace", "pagerduty", "opsgenie", "circleci", "jira", "confluence", "vault", "consul",
    "nomad", "cloudflare", "fly", "render", "vercel", "supabase", "mongodb", "redis",
    "postgres", "mysql", "rabbitmq", "kafka", "elastic", "kibana", "splunk", "newrelic",
    "shopify", "paypal", "braintree", "square", "stripe", "coinbase", "binance", "gemini",
    "huggingface", "openai", "anthropic", "cohere", "mistral", "replicate", "pinecone",
    "weaviate", "qdrant", "scalingo", "settlemint", "sidekiq", "zapier", "facebook", "instagram",
    "slack", "teams", "telegram", "github", "gitlab", "gitea", "npm", "pypi", "nuget", "docker",
    "dockerhub", "quay", "grafana", "prometheus", "planetscale", "neon", "railway", "heroku",
    "kubernetes", "k8s", "openshift", "rancher", "terraform", "pulumi", "ansible", "chef",
    "puppet", "digitalocean", "linode", "vultr", "hetzner", "ovh", "alibaba", "tencent",
    "yandex", "baidu", "naver", "kakao", "line", "wechat", "mailjet", "postmark", "sparkpost",
    "mandrill", "nexmo", "vonage", "plivo", "bandwidth", "sinch", "clickup", "notion", "linear",
    "monday", "airtable", "coda", "figma", "miro", "lucid", "dbt", "snowflake", "databricks",
    "bigquery", "redshift", "fivetran", "segment", "mixpanel", "amplitude", "heap", "posthog",
    "rollbar", "bugsnag", "raygun", "honeycomb", "lightstep", "logdna", "loggly", "papertrail",
    "sumologic", "new_relic", "nr_", "pat", "sk", "sourcegraph",
)
SECRET_CONTEXT_WORDS = STRONG_CONTEXT_WORDS + PROVIDER_CONTEXT_WORDS
_ASSIGN_GAP = re.compile(r"""^[\w.-]*["']?\s*(?:::=|:=|=>|=|:)\s*["'`]?$""")
ENTROPY_CAND = re.compile(r"(?<![A-Za-z0-9+/=_.~-])[A-Za-z0-9+/_.~-]{16,512}={0,3}(?![A-Za-z0-9+/=_.~-])")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_HEXHASH = re.compile(r"^[0-9a-f]{32}$|^[0-9a-f]{40}$|^[0-9a-f]{64}$", re.I)
_PATHLIKE = re.compile(r"^[\w.-]*(?:/[\w.-]+){2,}/?$|^[a-z]+(?:[._-][a-z]+)+$|^[A-Z]+(?:_[A-Z]+)+$")


# Cloud resource ids a reviewer must see: AWS (i-, sg-, vpc-, subnet-, ami-, vol-, snap-, eni-,
# …), with a hex body of 8 or 17 digits.
_RESOURCE_ID = re.compile(
    r"^(?:i|sg|sgr|vpc|vpce|subnet|ami|vol|snap|eni|igw|eigw|rtb|acl|nat|eipalloc|eipassoc|lt|pcx|"
    r"tgw|tgw-attach|dopt|pl|cgw|vgw|vpn|fs|fsap|fsmap|lb|tg|r|db|cluster|elb|sir|fleet|host|"
    r"cr|ipam|ipam-pool|prefix|nacl|eni-attach|sl|ssm|mi|ins)-[0-9a-f]{8,17}$"
)


def _entropy_ok(s: str) -> bool:
    core = s.strip("=.-_~/")
    if len(core) < 16 or _RESOURCE_ID.match(s):
        return False
    has_digit = any(c.isdigit() for c in core)
    has_alpha = any(c.isalpha() for c in core)
    if not has_alpha:
        return False
    if _PATHLIKE.match(core):
        return False
    h = shannon_entropy(core)
    if has_digit and any(c.isupper() for c in core) and any(c.islower() for c in core):
        return h >= 3.5
    if has_digit:
        return h >= 3.2
    return h >= 4.0


def find_high_entropy(text: str) -> Iterator[tuple[int, int, float]]:
    """Random-looking strings (16+ characters, mixed classes, high Shannon entropy) with a
    secret word (``token``, ``key``, a provider name …) on the same line, before them."""
    lower = text.lower()
    for m in ENTROPY_CAND.finditer(text):
        s = m.group(0)
        if not _entropy_ok(s):
            continue
        line_start = text.rfind("\n", 0, m.start()) + 1
        before = lower[max(line_start, m.start() - 80) : m.start()]
        if not any(w in before for w in STRONG_CONTEXT_WORDS):
            if "/" in s.rstrip("=") or not any(
                _ASSIGN_GAP.match(before[before.rfind(w) + len(w) :])
                for w in PROVIDER_CONTEXT_WORDS
                if w in before
            ):
                continue
        conf = 0.7 if (_UUID.match(s) or _HEXHASH.match(s)) else 0.75
        yield (m.start(), m.end(), conf)


_SQL_INSERT = re.compile(
    r"(?is)\binsert\s+into\s+[\w.\"`\[\]]+\s*\(([^)]{1,4000})\)\s*values\s*((?:\((?:[^()']|'(?:[^']|'')*')*\)\s*,?\s*){1,200})"
)
_SQL_UPDATE = re.compile(r"(?is)\b(?:set|where|and|or)\s+[\"`\[]?(\w+)[\"`\]]?\s*(?:=|like)\s*'((?:[^']|'')*)'")
_SQL_TUPLE = re.compile(r"\(((?:[^()']|'(?:[^']|'')*')*)\)")
_SQL_ITEM = re.compile(r"\s*('(?:[^']|'')*'|[^,]+?)\s*(?:,|$)")


def find_sql(text: str) -> Iterator[tuple[int, int, float, str]]:
    """Literal values of sensitive columns in SQL: ``INSERT INTO t (email, ssn) VALUES ('…', '…')``
    and ``SET password = '…'`` / ``WHERE ssn = '…'``."""
    for m in _SQL_INSERT.finditer(text):
        cols = [c.strip().strip("\"`[]") for c in m.group(1).split(",")]
        kinds = [classify_key(c) for c in cols]
        if not any(kinds):
            continue
        base = m.start(2)
        for t in _SQL_TUPLE.finditer(m.group(2)):
            inner_start = base + t.start(1)
            pos = 0
            inner = t.group(1)
            for idx, im in enumerate(_SQL_ITEM.finditer(inner)):
                if im.end() == im.start() or idx >= len(kinds):
                    break
                pos = im.start(1)
                item = im.group(1)
                entity = kinds[idx]
                if entity and item.upper() != "NULL":
                    s = inner_start + pos
                    e = s + len(item)
                    if item.startswith("'"):
                        s, e = s + 1, e - 1
                    if e > s:
                        yield (s, e, 0.85, entity)
    for m in _SQL_UPDATE.finditer(text):
        entity = classify_key(m.group(1))
        if entity and m.end(2) > m.start(2):
            yield (m.start(2), m.end(2), 0.85, entity)


def builtin_secrets() -> list[Detector]:
    """Every credential detector."""
    out = [
        Detector(rid, "SECRET", conf, re.compile(pat), keywords=kws)
        for rid, pat, kws, conf in _TOKEN_RULES
    ]
    # Rules whose secret is a capture group.
    grouped = {"gitlab_session", "azure_storage_key", "azure_sas_token", "cohere_api_key", "kubernetes_secret_data", "kubernetes_secret_data_block", "sidekiq_secret"}
    out = [
        Detector(d.id, d.entity, d.confidence, d.pattern, group=1, keywords=d.keywords)
        if d.id in grouped
        else d
        for d in out
    ]
    out += [
        Detector("private_key", "SECRET", 0.99, PEM_RE, keywords=("-----begin",)),
        Detector("private_key_escaped", "SECRET", 0.99, PEM_ESCAPED_RE, keywords=("private key-----\\n",)),
        Detector("jwt", "SECRET", 0.95, JWT_RE, keywords=("ey",), requires="."),
        Detector("bearer_token", "SECRET", 0.85, BEARER_RE, group=1, keywords=("bearer", "token ", "basic ", "digest ", "apikey ", "api-key ", "sso-key ")),
        Detector("authorization_header", "SECRET", 0.9, BASIC_HEADER_RE, group=1, keywords=("authorization",)),
        Detector("curl_user", "SECRET", 0.9, CURL_USER_RE, group=1, keywords=("-u ", "--user")),
        Detector("sql_password", "SECRET", 0.9, SQL_IDENTIFIED_RE, group=1, keywords=("identified", "password")),
        Detector("nuget_password", "SECRET", 0.9, NUGET_RE, group=1, keywords=("password",)),
        Detector("assignment", "SECRET", 0.85, finder=find_assignments, requires="=:"),
        Detector("command_line", "SECRET", 0.9, finder=find_cli_flags, requires="-"),
        Detector("markup", "SECRET", 0.9, finder=find_markup, requires="<"),
        Detector("query_param", "SECRET", 0.9, finder=find_query_params, requires="="),
        Detector("sql_values", "SECRET", 0.85, finder=find_sql, keywords=("insert", "set ", "where ")),
        Detector("high_entropy", "SECRET", 0.75, finder=find_high_entropy, keywords=SECRET_CONTEXT_WORDS),
    ]
    return out
