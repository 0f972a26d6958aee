"""The Keras models and layer stacks that the families (``tfae.families``) are built from.

- ``base``: ``Autoencoder``, a functional encoder and decoder in one ``keras.Model``;
- ``contractive``: the contractive penalty and ``ContractiveAutoencoder``'s ``train_step``;
- ``dense``, ``conv``: dense and convolutional encoders and their mirrored decoders;
- ``randomized``: the randomized autoencoder and its layer-wise trainer;
- ``variational``: the variational autoencoder, its ELBO ``train_step`` and its prior.

Examples:
    >>> from tfae.models.dense import dense_autoencoder
    >>> dense_autoencoder((28, 28, 1), (), 8, "relu", "relu", "shallow").latent_dim
    8
"""
