"""Provisioning: the CA, the coordinator's TLS identity, the partners' node keys and bundles."""

from fedpath.federation.contract import FederationContract
from fedpath.federation.layout import Bundle, Workspace, load_bundle, load_workspace
from fedpath.server.provision import pki
from fedpath.server.provision.build import Kit, provision
from fedpath.server.provision.project import Project, load_project

__all__ = [
    "Bundle",
    "FederationContract",
    "Kit",
    "Project",
    "Workspace",
    "load_bundle",
    "load_project",
    "load_workspace",
    "pki",
    "provision",
]
