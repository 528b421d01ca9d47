-- A client certificate verified against --client-ca is a principal only when registered: its
-- subject (the certificate's first DNS name, or its CN) names the principal it speaks as, and
-- revoking the principal stops the certificate too.
ALTER TABLE principals ADD COLUMN certificate_subject TEXT;
CREATE UNIQUE INDEX principals_certificate_subject ON principals (certificate_subject);
