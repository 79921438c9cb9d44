"""Tracing library shared by every process: W3C trace context, sampling, a lean OTLP span
encoder and batch exporter for hot paths, and the OpenTelemetry SDK set-up for the rest.

Process packages keep one ``telemetry.py`` each that builds on this library; they never
import each other.
"""
