"""The Finance Reviewer scenario through the Python client generated from the committed document.

Run by `cargo xtask clients` against a real plystrad:

    python python_scenario.py --base-url http://127.0.0.1:PORT   (key in PLYSTRA_API_KEY)

with the generated package `plystra_client` importable. Every request body is a generated model
and every response must parse into the generated model its operation documents, with no field
the document does not describe (`additional_properties` stays empty outside free-form maps).
Any other outcome raises, and the script exits non-zero.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

import attrs
from plystra_client import AuthenticatedClient, Client
from plystra_client.api.audit import list_audit_logs
from plystra_client.api.authorization import check_authorization, explain_authorization
from plystra_client.api.auth_zen import authzen_evaluation
from plystra_client.api.groups import create_group
from plystra_client.api.member_roles import create_member_role
from plystra_client.api.members import create_member
from plystra_client.api.permissions import create_permission
from plystra_client.api.resource_types import (
    upsert_resource_action,
    upsert_resource_mapping,
    upsert_resource_type,
)
from plystra_client.api.resources import create_space_resource
from plystra_client.api.role_permissions import create_role_permission
from plystra_client.api.roles import create_role
from plystra_client.api.spaces import create_space
from plystra_client.api.system import get_readiness, list_capabilities
from plystra_client.api.user_members import create_user_member, revoke_user_member
from plystra_client.api.users import create_user, get_user
from plystra_client.models import (
    AuthzenAction,
    AuthzenDecision,
    AuthzenEvaluationRequest,
    AuthzenResource,
    AuthzenSubject,
    AuthzActor,
    AuthzRequest,
    CheckMode,
    Decision,
    DenyCode,
    EnvelopeCheckResult,
    EnvelopeExplainTrace,
    EnvelopeReady,
    EnvelopeUserMember,
    ErrorCode,
    ErrorEnvelope,
    GroupCreateRequest,
    ListEnvelopeAuditLog,
    ListEnvelopeCapabilityInfo,
    MemberCreateRequest,
    MemberRoleCreateRequest,
    PermissionCreateRequest,
    ResourceActionMutationRequest,
    ResourceCreateRequest,
    ResourceMappingMutationRequest,
    ResourceTypeMutationRequest,
    RiskLevel,
    RoleCreateRequest,
    RolePermissionCreateRequest,
    Scope,
    SpaceCreateRequest,
    StorageKind,
    UserCreateRequest,
    UserMemberCreateRequest,
    UserMemberRevokeRequest,
    UserMemberStatus,
)
from plystra_client.types import Unset


def undescribed_fields(value, path="$"):
    """Paths of fields the server sent that the document does not describe."""
    found = []
    if attrs.has(type(value)):
        declared = [f.name for f in attrs.fields(type(value)) if f.name != "additional_properties"]
        extra = getattr(value, "additional_properties", {})
        # A model without declared fields is a free-form map (`metadata`, `details`).
        if declared and extra:
            found.extend(f"{path}.{key}" for key in extra)
        for name in declared:
            found.extend(undescribed_fields(getattr(value, name), f"{path}.{name}"))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(undescribed_fields(item, f"{path}[{i}]"))
    return found


def expect(response, status, model, what):
    """The parsed body, which must be a `model` answered with `status` and fully described."""
    parsed = response.parsed
    if response.status_code != status or not isinstance(parsed, model):
        raise AssertionError(
            f"{what}: expected {status} {model.__name__}, got {int(response.status_code)} "
            f"{type(parsed).__name__}: {response.content[:500]!r}"
        )
    extra = undescribed_fields(parsed)
    if extra:
        raise AssertionError(f"{what}: fields the document does not describe: {extra}")
    return parsed


def created(response, what):
    """A create or upsert answered 201 (or 200 for an upsert that existed) with its envelope."""
    status = 201 if int(response.status_code) == 201 else 200
    parsed = response.parsed
    if isinstance(parsed, ErrorEnvelope) or parsed is None:
        raise AssertionError(f"{what}: {int(response.status_code)} {response.content[:500]!r}")
    return expect(response, status, type(parsed), what).data


def wait_ready(base_url, seconds=60):
    client = Client(base_url=base_url, raise_on_unexpected_status=True)
    deadline = time.monotonic() + seconds
    while True:
        try:
            response = get_readiness.sync_detailed(client=client)
            if int(response.status_code) == 200:
                return expect(response, 200, EnvelopeReady, "ready").data
        except Exception as error:  # noqa: BLE001 - not listening yet
            last = error
        else:
            last = f"{int(response.status_code)} {response.content[:300]!r}"
        if time.monotonic() > deadline:
            raise AssertionError(f"plystrad was not ready within {seconds}s: {last}")
        time.sleep(0.25)


def fixture(api):
    for user_id, email in [("user_alice", "alice@example.com"), ("user_bob", "bob@example.com")]:
        user = created(
            create_user.sync_detailed(
                client=api,
                body=UserCreateRequest(id=user_id, email=email, password="correct horse battery"),
            ),
            f"create {user_id}",
        )
        assert user.id == user_id and user.email == email, user
    space = created(
        create_space.sync_detailed(client=api, body=SpaceCreateRequest(id="space_acme", name="Acme")),
        "create space_acme",
    )
    assert space.id == "space_acme", space
    for group_id, path in [
        ("group_finance", "finance"),
        ("group_finance_apac", "finance.apac"),
        ("group_finance_emea", "finance.emea"),
        ("group_legal", "legal"),
        ("group_legal_emea", "legal.emea"),
    ]:
        group = created(
            create_group.sync_detailed(
                "space_acme", client=api, body=GroupCreateRequest(id=group_id, path=path)
            ),
            f"create group {path}",
        )
        assert group.path == path, group
    for member_id, name in [
        ("member_finance_reviewer", "Finance reviewer"),
        ("member_invoice_creator", "Invoice creator"),
    ]:
        created(
            create_member.sync_detailed(
                "space_acme", client=api, body=MemberCreateRequest(id=member_id, display_name=name)
            ),
            f"create {member_id}",
        )
    expired = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    for binding_id, user_id, relation, expires_at in [
        ("um_alice_finance_reviewer", "user_alice", "delegate", None),
        ("um_bob_finance_reviewer", "user_bob", "login", None),
        ("um_alice_finance_reviewer_revoked", "user_alice", "delegate", None),
        ("um_alice_finance_reviewer_expired", "user_alice", "delegate", expired),
    ]:
        body = UserMemberCreateRequest(
            id=binding_id,
            user_id=user_id,
            member_id="member_finance_reviewer",
            relation_type=relation,
        )
        if expires_at is not None:
            body.expires_at = expires_at
        created(
            create_user_member.sync_detailed("space_acme", client=api, body=body),
            f"create {binding_id}",
        )
    revoked = expect(
        revoke_user_member.sync_detailed(
            "space_acme",
            "um_alice_finance_reviewer_revoked",
            client=api,
            body=UserMemberRevokeRequest(revoked_reason="rotated"),
        ),
        200,
        EnvelopeUserMember,
        "revoke um_alice_finance_reviewer_revoked",
    ).data
    assert revoked.status == UserMemberStatus.REVOKED, revoked

    created(
        upsert_resource_type.sync_detailed(
            client=api, body=ResourceTypeMutationRequest(key="invoice", display_name="Invoice")
        ),
        "upsert resource type invoice",
    )
    for key, risk in [
        ("read", RiskLevel.NORMAL),
        ("create", RiskLevel.NORMAL),
        ("approve", RiskLevel.HIGH),
        ("reject", RiskLevel.HIGH),
        ("delete", RiskLevel.CRITICAL),
    ]:
        action = created(
            upsert_resource_action.sync_detailed(
                "invoice", client=api, body=ResourceActionMutationRequest(key=key, risk_level=risk)
            ),
            f"upsert action {key}",
        )
        assert action.risk_level == risk, action
    mapping = created(
        upsert_resource_mapping.sync_detailed(
            "invoice",
            client=api,
            body=ResourceMappingMutationRequest(storage_kind=StorageKind.INTERNAL_TABLE),
        ),
        "upsert mapping",
    )
    assert mapping.storage_kind == StorageKind.INTERNAL_TABLE, mapping
    for resource_id, group_id in [
        ("invoice_001", "group_finance_apac"),
        ("invoice_002", "group_legal_emea"),
    ]:
        created(
            create_space_resource.sync_detailed(
                "space_acme",
                client=api,
                body=ResourceCreateRequest(
                    id=resource_id,
                    resource_type="invoice",
                    group_id=group_id,
                    owner_member_id="member_invoice_creator",
                ),
            ),
            f"create {resource_id}",
        )

    role = created(
        create_role.sync_detailed(
            "space_acme",
            client=api,
            body=RoleCreateRequest(
                id="role_finance_approver", key="finance_approver", name="Finance approver"
            ),
        ),
        "create role",
    )
    permission = created(
        create_permission.sync_detailed(
            client=api,
            body=PermissionCreateRequest(
                resource="invoice", action="approve", scope=Scope.GROUP_TREE
            ),
        ),
        "create permission",
    )
    assert permission.scope == Scope.GROUP_TREE, permission
    created(
        create_role_permission.sync_detailed(
            client=api,
            body=RolePermissionCreateRequest(role_id=role.id, permission_id=permission.id),
        ),
        "create role-permission",
    )
    created(
        create_member_role.sync_detailed(
            "space_acme",
            client=api,
            body=MemberRoleCreateRequest(
                member_id="member_finance_reviewer",
                role_id=role.id,
                scope_anchor_group_id="group_finance",
            ),
        ),
        "create member-role",
    )


def request(user, binding, resource_type, resource_id, action):
    return AuthzRequest(
        actor=AuthzActor(
            user_id=user,
            member_id="member_finance_reviewer",
            user_member_id=binding,
            space_id="space_acme",
        ),
        resource_type=resource_type,
        resource_id=resource_id,
        action=action,
    )


ALICE = "um_alice_finance_reviewer"
TABLE = [
    (request("user_alice", ALICE, "invoice", "invoice_001", "approve"), None),
    (request("user_alice", ALICE, "invoice", "invoice_002", "approve"), DenyCode.SCOPE_OUT_OF_BOUNDS),
    (request("user_bob", "um_bob_finance_reviewer", "invoice", "invoice_001", "approve"), None),
    (
        request("user_alice", "um_alice_finance_reviewer_revoked", "invoice", "invoice_001", "approve"),
        DenyCode.USER_MEMBER_REVOKED,
    ),
    (
        request("user_alice", "um_alice_finance_reviewer_expired", "invoice", "invoice_001", "approve"),
        DenyCode.USER_MEMBER_EXPIRED,
    ),
    (request("user_alice", ALICE, "invoice", "invoice_001", "reject"), DenyCode.NO_MATCHING_PERMISSION),
    (request("user_alice", ALICE, "contract", "invoice_001", "approve"), DenyCode.INVALID_RESOURCE_TYPE),
    (request("user_alice", ALICE, "invoice", "invoice_001", "teleport"), DenyCode.INVALID_RESOURCE_ACTION),
]


def decisions(api):
    denied = {}
    for i, (body, deny_code) in enumerate(TABLE):
        result = expect(
            check_authorization.sync_detailed(client=api, body=body),
            200,
            EnvelopeCheckResult,
            f"check row {i}",
        ).data
        want = Decision.DENY if deny_code else Decision.ALLOW
        assert result.decision == want, (i, result)
        assert result.allow == (deny_code is None), (i, result)
        if deny_code is None:
            assert result.deny_code is None or isinstance(result.deny_code, Unset), (i, result)
        else:
            assert result.deny_code == deny_code, (i, result)
            denied[result.audit_log_id] = deny_code
    print(f"python client: {len(TABLE)} checks decided as the Finance Reviewer table says")

    trace = expect(
        explain_authorization.sync_detailed(client=api, body=TABLE[2][0]),
        200,
        EnvelopeExplainTrace,
        "explain bob",
    ).data
    assert trace.decision == Decision.ALLOW, trace
    assert trace.mode == CheckMode.MANAGED, trace
    assert trace.actor.user_id == "user_bob", trace.actor
    assert trace.actor.member_id == "member_finance_reviewer", trace.actor
    assert trace.matched_candidates[0].role == "finance_approver", trace.matched_candidates
    assert trace.matched_candidates[0].scope_check.covered is True, trace.matched_candidates
    trace = expect(
        explain_authorization.sync_detailed(client=api, body=TABLE[1][0]),
        200,
        EnvelopeExplainTrace,
        "explain alice on invoice_002",
    ).data
    assert trace.deny_code == DenyCode.SCOPE_OUT_OF_BOUNDS, trace
    denied[trace.audit.audit_log_id] = DenyCode.SCOPE_OUT_OF_BOUNDS
    print("python client: explain traces bob's allow and alice's scope denial")
    return denied


def audit(api, denied):
    every = expect(
        list_audit_logs.sync_detailed(client=api, event_type="authz.decision", limit=200),
        200,
        ListEnvelopeAuditLog,
        "audit logs of decisions",
    )
    assert len(every.data) == len(TABLE) + 2, len(every.data)
    denies = expect(
        list_audit_logs.sync_detailed(client=api, decision=Decision.DENY, limit=200),
        200,
        ListEnvelopeAuditLog,
        "audit logs filtered by decision=deny",
    )
    found = {record.id: record.deny_code for record in denies.data}
    assert all(record.decision == Decision.DENY for record in denies.data), denies.data
    assert found == denied, (found, denied)
    scoped = expect(
        list_audit_logs.sync_detailed(
            client=api, deny_code=DenyCode.USER_MEMBER_REVOKED, limit=200
        ),
        200,
        ListEnvelopeAuditLog,
        "audit logs filtered by deny_code",
    )
    assert [r.deny_code for r in scoped.data] == [DenyCode.USER_MEMBER_REVOKED], scoped.data
    print(f"python client: the audit log holds {len(every.data)} decisions, {len(found)} denies")


def authzen(api):
    """One AuthZEN evaluation, decided and audited as its `authz/check` row."""
    answer = expect(
        authzen_evaluation.sync_detailed(
            client=api,
            body=AuthzenEvaluationRequest(
                subject=AuthzenSubject(type_="user_member", id=ALICE),
                action=AuthzenAction(name="approve"),
                resource=AuthzenResource(type_="invoice", id="invoice_002"),
            ),
        ),
        200,
        AuthzenDecision,
        "AuthZEN evaluation",
    )
    assert answer.decision is False, answer
    assert answer.context.deny_code == DenyCode.SCOPE_OUT_OF_BOUNDS, answer.context
    assert answer.context.audit_log_id, answer.context
    print("python client: an AuthZEN evaluation denies alice invoice_002 as the table says")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    args = parser.parse_args()
    key = os.environ["PLYSTRA_API_KEY"]

    ready = wait_ready(args.base_url)
    assert ready.status == "ready", ready
    api = AuthenticatedClient(
        base_url=args.base_url,
        token=key,
        prefix="",
        auth_header_name="X-Plystra-API-Key",
        raise_on_unexpected_status=True,
    )
    capabilities = expect(
        list_capabilities.sync_detailed(client=api), 200, ListEnvelopeCapabilityInfo, "capabilities"
    ).data
    assert len(capabilities) == 5, capabilities

    # An error parses into the documented envelope with a known code.
    missing = expect(get_user.sync_detailed("user_nobody", client=api), 404, ErrorEnvelope, "404")
    assert isinstance(missing.error.code, ErrorCode), missing

    fixture(api)
    print("python client: Finance Reviewer fixture created")
    audit(api, decisions(api))
    authzen(api)
    print("python client: scenario passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print(f"python client: scenario FAILED: {error}", file=sys.stderr)
        raise
