#!/usr/bin/env python3
"""Checks the custom resources in Kubernetes manifests against the CRD schemas vendored in docker/k8s/schemas/.

kubernetes-validate knows only Kubernetes' built-in kinds; this covers the rest (KEDA's ScaledObject and
TriggerAuthentication, the Prometheus Operator's PodMonitor), offline and as strictly as
`kubectl apply --validate=strict`: a field the schema does not declare is an error, as it is for the API server's
strict field validation of a structural schema (which would otherwise prune it), unless the schema says
`x-kubernetes-preserve-unknown-fields`. CEL rules (`x-kubernetes-validations`) are not evaluated.

    scripts/validate-crds.py FILE...            validate; exit 1 on any error, or on a custom kind with no schema
    scripts/validate-crds.py --vendor CRD.yaml --source REPO PATH REF RELEASE
                                                write docker/k8s/schemas/<group>_<plural>.yaml from an upstream CRD

Built-in kinds (core, apps, batch, *.k8s.io, ...) are skipped here; kubernetes-validate --strict checks them.
Needs PyYAML and jsonschema (pip; both come with kubernetes-validate).
"""

import argparse
import os
import sys

import jsonschema
import yaml

SCHEMAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docker", "k8s", "schemas")

# API groups served by Kubernetes itself: "" (core) and the dotless groups, plus *.k8s.io.
BUILTIN_GROUPS = {"", "apps", "batch", "autoscaling", "policy", "extensions"}

# ObjectMeta as the API server accepts it in a manifest (CRD schemas declare metadata only as `type: object`).
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
        "uid": {"type": "string"},
        "resourceVersion": {"type": "string"},
        "generation": {"type": "integer"},
        "creationTimestamp": {"type": ["string", "null"]},
        "deletionTimestamp": {"type": ["string", "null"]},
        "deletionGracePeriodSeconds": {"type": "integer"},
        "managedFields": {"type": "array", "items": {"type": "object"}},
        "selfLink": {"type": "string"},
    },
    "additionalProperties": False,
    "anyOf": [{"required": ["name"]}, {"required": ["generateName"]}],
}


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (the API server's strict decoding does)."""


def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate field {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def strict(schema):
    """The vendored schema as JSON Schema with the API server's strictness: closed objects, nullable, ObjectMeta."""

    def walk(node):
        if not isinstance(node, dict):
            return node
        node = dict(node)
        for key in ("properties", "patternProperties"):
            if isinstance(node.get(key), dict):
                node[key] = {name: walk(sub) for name, sub in node[key].items()}
        for key in ("items", "additionalProperties", "not"):
            if isinstance(node.get(key), dict):
                node[key] = walk(node[key])
        for key in ("anyOf", "allOf", "oneOf"):
            if isinstance(node.get(key), list):
                node[key] = [walk(sub) for sub in node[key]]
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
        if node.get("type") == "object" and not preserve and "additionalProperties" not in node:
            if node.get("x-kubernetes-embedded-resource") is True:
                props = node.setdefault("properties", {})
                for field, sub in (("apiVersion", {"type": "string"}), ("kind", {"type": "string"}), ("metadata", OBJECT_META)):
                    props.setdefault(field, sub)
            # Structural pruning drops every undeclared field of such an object; strict validation reports it.
            node["additionalProperties"] = False
        return node

    out = walk(schema)
    out.setdefault("properties", {})["metadata"] = OBJECT_META
    out["required"] = sorted(set(out.get("required", [])) | {"apiVersion", "kind", "metadata"})
    return out


def load_schemas():
    """{(apiVersion, kind): JSON schema} from every vendored file."""
    found = {}
    for name in sorted(os.listdir(SCHEMAS)):
        if not name.endswith((".yaml", ".yml")):
            continue
        with open(os.path.join(SCHEMAS, name), encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        for version, body in doc["versions"].items():
            found[(f"{doc['group']}/{version}", doc["kind"])] = (strict(body["openAPIV3Schema"]), name)
    return found


def dotted(path):
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def messages(error):
    """kubectl-like lines for one jsonschema error: the full path of the offending field first."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        allowed = set(error.schema.get("properties", {}))
        return [f'unknown field "{dotted(path + [k])}"' for k in sorted(error.instance) if k not in allowed]
    if error.validator == "required":
        missing = [k for k in error.validator_value if isinstance(error.instance, dict) and k not in error.instance]
        return [f'{dotted(path + [k])}: Required value' for k in missing] or [f"{dotted(path)}: {error.message}"]
    if error.validator == "anyOf" and error.schema is OBJECT_META:
        return [f"{dotted(path)}: name or generateName is required"]
    return [f"{dotted(path) or '<document>'}: {error.message}"]


def validate(files):
    schemas = load_schemas()
    failures = 0
    for file in files:
        try:
            with open(file, encoding="utf-8") as f:
                docs = list(yaml.load_all(f, Loader=StrictLoader))
        except (OSError, yaml.YAMLError) as e:
            print(f"ERROR {file}: {e}")
            failures += 1
            continue
        for index, doc in enumerate(docs):
            if doc is None:
                continue
            where = f"{file} (document {index + 1})"
            if not isinstance(doc, dict) or not isinstance(doc.get("apiVersion"), str) or not isinstance(doc.get("kind"), str):
                print(f"ERROR {where}: not a Kubernetes object (apiVersion and kind are required)")
                failures += 1
                continue
            api, kind = doc["apiVersion"], doc["kind"]
            name = (doc.get("metadata") or {}).get("name", "?") if isinstance(doc.get("metadata"), dict) else "?"
            resource = f"{kind}/{name}"
            group = api.rpartition("/")[0]
            if group in BUILTIN_GROUPS or group.endswith(".k8s.io"):
                print(f"SKIP {file}: {resource} ({api}) is a built-in kind, checked by kubernetes-validate")
                continue
            if (api, kind) not in schemas:
                print(f"ERROR {file}: {resource}: no vendored schema for {kind} in {api} (add its CRD to docker/k8s/schemas/)")
                failures += 1
                continue
            schema, source = schemas[(api, kind)]
            errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
            lines = [line for e in errors for line in messages(e)]
            for line in lines:
                print(f"ERROR {file}: {resource}: {line}")
            if lines:
                failures += 1
            else:
                print(f"PASS {file}: {resource} ({api}) matches {source}")
    return failures


def without_descriptions(node, in_properties=False):
    """The schema minus its prose: `description` keywords go, a field *named* description stays."""
    if isinstance(node, list):
        return [without_descriptions(n) for n in node]
    if not isinstance(node, dict):
        return node
    return {
        k: without_descriptions(v, in_properties=(k == "properties" and not in_properties))
        for k, v in node.items()
        if in_properties or k != "description"
    }


def vendor(crd_file, repo, path, ref, release):
    with open(crd_file, encoding="utf-8") as f:
        crd = next(d for d in yaml.safe_load_all(f) if d and d.get("kind") == "CustomResourceDefinition")
    spec = crd["spec"]
    versions = {v["name"]: {"openAPIV3Schema": without_descriptions(v["schema"]["openAPIV3Schema"])}
                for v in spec["versions"] if v.get("served", True)}
    out = os.path.join(SCHEMAS, f"{spec['group']}_{spec['names']['plural']}.yaml")
    header = (
        f"# {spec['names']['kind']} ({spec['group']}): the openAPIV3Schema of each served version of its CRD,\n"
        f"# {path}\n# in https://github.com/{repo} at {ref} ({release}).\n"
        f"# Licensed under the Apache License 2.0 (LICENSE in this folder). Only the `description` texts are dropped;\n"
        f"# everything else is as upstream. Regenerate: scripts/validate-crds.py --vendor CRD.yaml --source ...\n"
    )
    body = {"group": spec["group"], "kind": spec["names"]["kind"],
            "source": {"repository": repo, "path": path, "ref": ref, "release": release, "license": "Apache-2.0"},
            "versions": versions}
    with open(out, "w", encoding="utf-8") as f:
        f.write(header)
        yaml.safe_dump(body, f, sort_keys=True, default_flow_style=False, width=120, allow_unicode=True)
    print(f"wrote {os.path.relpath(out)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help="multi-document YAML manifests")
    parser.add_argument("--vendor", metavar="CRD.yaml", help="write the vendored schema of an upstream CRD")
    parser.add_argument("--source", nargs=4, metavar=("REPO", "PATH", "REF", "RELEASE"),
                        help="where --vendor's CRD comes from, e.g. kedacore/keda config/crd/bases/... <commit> v2.12")
    args = parser.parse_args()
    if args.vendor:
        if not args.source:
            parser.error("--vendor needs --source REPO PATH REF RELEASE")
        vendor(args.vendor, *args.source)
        return 0
    if not args.files:
        parser.error("no manifests given")
    return 1 if validate(args.files) else 0


if __name__ == "__main__":
    sys.exit(main())
