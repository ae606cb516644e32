"""reliefdocs: eligibility decisions in, court-ready filing bundles out.

The pipeline, one module per stage, in the order a decision travels:

    events    Kafka record -> validated Decision / BatchClosed (or a Rejection for the DLQ)
    batching  decisions grouped per (court, batch_id, volume); decides when a batch is filed
    render    docxtpl, sandboxed and autoescaping: batch -> DOCX documents
    convert   LibreOffice: DOCX -> PDF, many documents per process, with a timeout
    bundle    pypdf: the papers filed, each numbered from 1 and bookmarked; bundle.pdf, bundle-public.pdf
    store     object storage (S3 or a folder): objects first, manifest last
    notify    the relief.filing.bundle.ready.v1 CloudEvent

`worker` is the conductor that runs them; `kafka` and `store` are the edges.
"""

__version__ = "0.1.0"
