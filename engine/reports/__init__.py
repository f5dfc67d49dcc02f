"""Sample reports: one patient's sample, reviewed and signed, as PDF, JSON, CSV and HL7 FHIR.
"""
