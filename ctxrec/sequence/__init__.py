"""The self-attentive sequence model (sources 000 and 002): its windows, training, checkpoints,
reports and the background training job."""
